"""Keyed state kept per input partition ("shards"), so a partition can move to another worker with it.

A keyed operator (window aggregation, sessions, reduce, interval join) is wrapped in a
`ShardedOperator`: one inner operator, with its own kernel state, per *shard*. Sharding is on in
scale-out runs (``run(worker_id=...)``); a single worker keeps one shard. A batch's shard is the
partition number within its topic (``partition % 2**20``, see ``connectors.kafka.partition_id``), so
the co-partitioning rule holds: records of one key must arrive on the same partition number of every
input (the input is keyed as the job keys it, or repartitioned through a topic first), exactly as
Kafka Streams requires. Sources without partitions have one shard, 0.

The watermark stays operator-wide: every shard sees every batch's watermark (an empty batch for the
shards the batch's records do not belong to), so windows of a quiet partition still fire. Each shard
keeps its own never-decreasing watermark, so a shard restored from another worker's checkpoint (which
may be ahead of this worker) keeps what it had purged purged; the operator reports the minimum. Results of
several shards in one step are concatenated in shard order.

``snapshot_shard``/``restore_shard``/``drop_shard`` move one shard: its snapshot carries the *keys* of
the ids it holds, because key ids are local to a worker; restoring re-interns them and renumbers.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from engine.batch import Batch
from engine.runtime.keys import KeyDomain
from engine.runtime.operators.base import INT64_MIN, Operator, Output

__all__ = ["SHARD_SPAN", "ShardedOperator", "concat_batches", "shard_of"]

SHARD_SPAN = 2**20  # the partition-id scheme of connectors.kafka: topic_index * 2**20 + partition


def shard_of(partition: int) -> int:
    """The shard of a source partition id: its partition number within its topic."""
    return partition % SHARD_SPAN


def concat_batches(batches: list[Batch]) -> Batch:
    """One batch holding the records of ``batches`` in order (their watermark and idleness: the last's)."""
    non_empty = [b for b in batches if len(b)]
    last = batches[-1]
    if not non_empty:
        return last
    if len(non_empty) == 1:
        return non_empty[0].replace(watermark=last.watermark, idle=last.idle)
    ts = np.concatenate([b.ts for b in non_empty])
    wm = np.concatenate([b.wm for b in non_empty])
    if all(b.columns and not b.has_records for b in non_empty):
        names = list(non_empty[0].columns)
        columns = {name: np.concatenate([b.columns[name] for b in non_empty]) for name in names}
        return Batch(ts, wm, columns=columns, origin=last.origin, partition=last.partition,
                     watermark=last.watermark, idle=last.idle)
    records = [r for b in non_empty for r in b.records]
    return Batch(ts, wm, records=records, origin=last.origin, partition=last.partition,
                 watermark=last.watermark, idle=last.idle)


class ShardedOperator(Operator):
    """One inner keyed operator per shard (see the module docstring). With ``by_partition=False`` (a
    single worker) everything is shard 0, so a key arriving on several partitions has one state."""

    def __init__(self, step: str, make: Callable[[], Operator], domain: KeyDomain, by_partition: bool = True) -> None:
        super().__init__(step)
        self.make = make
        self.by_partition = by_partition
        self.domain = domain
        self.shards: dict[int, Operator] = {}
        self.watermark = INT64_MIN

    def _shard(self, shard: int) -> Operator:
        op = self.shards.get(shard)
        if op is None:
            # A new shard takes its watermark from the batches it sees; each shard never goes back on
            # its own watermark (a shard restored from another worker may be ahead of this worker's).
            op = self.shards[shard] = self.make()
        return op

    def process(self, batch: Batch, input_index: int) -> Output:
        if len(batch):
            target = shard_of(batch.partition) if self.by_partition else 0
            self._shard(target)
        else:
            target = None
            if not self.shards:
                self._shard(0)
        outputs: list[Output] = []
        for shard in sorted(self.shards):
            op = self.shards[shard]
            outputs.append(op.process(batch if shard == target or target is None else batch.emptied(), input_index))
        self.watermark = max(self.watermark, min(op.watermark for op in self.shards.values()))
        if len(outputs) == 1:
            return outputs[0]
        lates = [o.late for o in outputs if o.late is not None]
        return Output(
            concat_batches([o.main for o in outputs]),
            late=concat_batches(lates) if lates else None,
            errors=[e for o in outputs for e in o.errors],
            late_count=sum(o.late_count for o in outputs),
        )

    # ---- moving shards ----

    def shard_ids(self) -> list[int]:
        return sorted(self.shards)

    def snapshot_shard(self, shard: int) -> dict[str, Any]:
        op = self.shards[shard]
        marked = np.zeros(len(self.domain), dtype=bool)  # key ids are dense: marks, not a sort
        marked[np.asarray(op.live_key_ids(), dtype=np.int64)] = True  # type: ignore[attr-defined]
        key_ids = np.flatnonzero(marked).astype(np.int64, copy=False)
        return {
            "state": op.snapshot(),
            "key_ids": key_ids,
            "keys": self.domain.interner.keys_of(key_ids),
        }

    def restore_shard(self, shard: int, snapshot: dict[str, Any]) -> None:
        """Replace shard ``shard`` with ``snapshot`` (possibly taken by another worker)."""
        self.drop_shard(shard)
        op = self._shard(shard)
        op.restore(snapshot["state"])
        old_ids = np.asarray(snapshot["key_ids"], dtype=np.int64)
        if len(old_ids):
            new_ids = self.domain.intern(list(snapshot["keys"]))
            mapping = np.full(int(old_ids.max()) + 1, -1, dtype=np.int64)
            mapping[old_ids] = new_ids
            op.remap_key_ids(mapping)  # type: ignore[attr-defined]

    def drop_shard(self, shard: int) -> None:
        op = self.shards.pop(shard, None)
        if op is not None and op in self.domain.holders:
            self.domain.holders.remove(op)

    # ---- whole-operator state ----

    def state_size(self) -> int:
        return sum(op.state_size() for op in self.shards.values())

    def extra_metrics(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"shards": len(self.shards)}
        for op in self.shards.values():
            for name, value in op.extra_metrics().items():
                extra[name] = extra.get(name, 0) + value
        return extra

    def snapshot(self) -> dict[str, Any]:
        return {"watermark": self.watermark, "shards": {shard: self.shards[shard].snapshot() for shard in self.shards}}

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Restore on the same worker (key ids are those of the restored key domain)."""
        for shard in list(self.shards):
            self.drop_shard(shard)
        self.watermark = snapshot["watermark"]
        for shard, state in snapshot["shards"].items():
            self._shard(int(shard)).restore(state)
