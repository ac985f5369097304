"""The source operator: event time extraction and the per-record watermark rule, per partition.

Each source partition has its own `kernels.WatermarkTracker`. The watermark in force before record
``i`` of a partition is computed from records ``0..i-1`` of that partition, including records that a
later step filters out (SEMANTICS.md, "Per-record rule"); it travels with the batch as the ``wm``
column. With several partitions a record also sees the current watermark of the other active
partitions (the minimum), and the source's watermark is `kernels.combine_watermarks` over them.
Partitions may appear while running (a consumer-group assignment) and may be revoked; a partition
silent for ``idle_timeout`` (wall clock) stops holding the others back until it produces again.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from engine import kernels
from engine.batch import Batch, columns_to_records
from engine.dead_letters import DeadLetter
from engine.io import SourceChunk
from engine.runtime.extract import Problem, call_per_record, field_values, good_index, timestamp_column
from engine.runtime.operators.base import INT64_MAX, INT64_MIN, Operator, Output, dead_letters_for
from engine.time import BoundedOutOfOrderness

__all__ = ["SourceOperator"]


class _Partition:
    __slots__ = ("tracker", "watermark", "idle", "last_seen")

    def __init__(self, delay: int) -> None:
        self.tracker = kernels.WatermarkTracker(delay)
        self.watermark = INT64_MIN
        self.idle = False
        self.last_seen = time.monotonic()


class SourceOperator(Operator):
    """Turns `SourceChunk` objects into batches with ``ts`` and per-record ``wm`` columns."""

    def __init__(
        self,
        step: str,
        partitions: list[int],
        timestamp: str | Callable[[Any], int] | None,
        watermark: BoundedOutOfOrderness,
        monotonic: bool = True,
    ) -> None:
        super().__init__(step)
        self.monotonic = monotonic
        self.timestamp = timestamp
        self.delay = watermark.delay
        self.idle_timeout = watermark.idle_timeout
        self.partitions: dict[int, _Partition] = {p: _Partition(self.delay) for p in partitions}
        self._revoked: dict[int, _Partition] = {}
        self.watermark = INT64_MIN

    # ---- watermark bookkeeping ----

    def _combined(self) -> int:
        """`kernels.combine_watermarks` over the partitions (min over the active ones; all idle: max
        over all), in plain Python: a source has a handful of partitions and this runs every chunk."""
        if not self.partitions:
            return self.watermark
        active = INT64_MAX
        any_active = False
        top = INT64_MIN
        for part in self.partitions.values():
            if not part.idle:
                any_active = True
                if part.watermark < active:
                    active = part.watermark
            elif part.watermark > top:
                top = part.watermark
        return active if any_active else top

    def _advance(self) -> None:
        # Watermarks never go backwards, even when a new partition appears behind the others. In a
        # scale-out run (``monotonic=False``) a partition assigned from another worker may be behind and
        # pulls the source's watermark back, so its records are not judged by its peers' progress; the
        # keyed operators keep one never-decreasing watermark per partition shard instead.
        combined = self._combined()
        self.watermark = max(self.watermark, combined) if self.monotonic else combined

    def _others(self, partition: int) -> int:
        others = INT64_MAX
        for pid, part in self.partitions.items():
            if pid != partition and not part.idle and part.watermark < others:
                others = part.watermark
        return others

    def _all_idle(self) -> bool:
        return bool(self.partitions) and all(p.idle for p in self.partitions.values())

    def known_partitions(self) -> list[int]:
        return list(self.partitions)

    def register_partition(self, partition: int) -> None:
        """A partition announced without data (a heartbeat): it holds the watermark back (at INT64_MIN)
        until it produces records or goes idle, as an assigned but empty Kafka partition does in Flink."""
        if partition not in self.partitions:
            revived = self._revoked.pop(partition, None)
            self.partitions[partition] = revived if revived is not None else _Partition(self.delay)

    # ---- chunks ----

    def process_chunk(self, chunk: SourceChunk) -> Output:
        for pid in chunk.revoked:
            part = self.partitions.pop(pid, None)
            if part is not None and self.monotonic:
                self._revoked[pid] = part  # a single worker may get it back: keep its tracker
        if chunk.revoked and not len(chunk) and not chunk.errors:
            # Only a revocation: the remaining partitions may now let the watermark move on.
            self._advance()
            return Output(Batch.empty(self.watermark, origin=self.step, partition=chunk.partition))
        self.register_partition(chunk.partition)
        part = self.partitions[chunk.partition]
        part.last_seen = time.monotonic()
        part.idle = False
        errors = [
            DeadLetter(self.step, f"undecodable input: {reason}", raw, None, None) for raw, reason in chunk.errors
        ]
        records = chunk.records
        columns = chunk.columns
        if self.timestamp is None:
            ts, problems = self._provided_timestamps(chunk)
            if records is None and columns is None:
                records = []
        elif columns is not None and isinstance(self.timestamp, str):
            ts, problems = timestamp_column(columns[self.timestamp], self.timestamp)
        else:
            if records is None:
                records = columns_to_records(columns or {})
                columns = None
            ts, problems = self._record_timestamps(records)
        if problems:
            if records is None:  # only possible for object columns: route those rows as records
                records = columns_to_records(columns or {})
                columns = None
            errors += dead_letters_for(self.step, records, problems)
            keep = good_index(len(records), problems).tolist()
            records = [records[i] for i in keep]
        wm = part.tracker.advance(ts)
        part.watermark = part.tracker.current
        others = self._others(chunk.partition)
        if others != INT64_MAX and len(wm):
            wm = np.minimum(wm, np.int64(others))
        self._advance()
        batch = Batch(ts, wm, columns=columns, records=records if columns is None else None,
                      origin=self.step, partition=chunk.partition, watermark=self.watermark)
        return Output(batch, errors=errors)

    def _provided_timestamps(self, chunk: SourceChunk) -> tuple[np.ndarray, list[Problem]]:
        n = len(chunk)
        if chunk.timestamps is None or len(chunk.timestamps) != n:
            raise _missing_timestamps_error(self.step, n, chunk.timestamps)
        return timestamp_column(chunk.timestamps, "timestamp")

    def _record_timestamps(self, records: list) -> tuple[np.ndarray, list[Problem]]:
        if isinstance(self.timestamp, str):
            values, problems = field_values(records, self.timestamp)
            name = self.timestamp
        else:
            values, problems = call_per_record(self.timestamp, records, "timestamp function", pure=True)
            name = "timestamp"
        ts, type_problems = timestamp_column(values, name)
        if not problems:
            return ts, type_problems
        present = good_index(len(records), problems)
        for p in type_problems:  # positions in the present subset -> positions in the chunk
            p.index = int(present[p.index])
        return ts, sorted(problems + type_problems, key=lambda p: p.index)

    # ---- time passing without data ----

    def end_partition(self, partition: int) -> Output:
        """The partition is exhausted: its watermark becomes INT64_MAX."""
        part = self.partitions.get(partition)
        if part is None:
            part = self.partitions[partition] = _Partition(self.delay)
        part.tracker.end_input()
        part.watermark = INT64_MAX
        part.idle = False
        self._advance()
        return Output(Batch.empty(self.watermark, origin=self.step, partition=partition))

    def tick(self, now: float) -> Output | None:
        """Mark partitions silent for ``idle_timeout`` as idle; an output only when something changed."""
        if self.idle_timeout is None:
            return None
        changed = False
        for part in self.partitions.values():
            if not part.idle and not part.tracker.ended and (now - part.last_seen) * 1000.0 >= self.idle_timeout:
                part.idle = True
                changed = True
        if not changed:
            return None
        self._advance()
        return Output(Batch.empty(self.watermark, origin=self.step, idle=self._all_idle()))

    def snapshot_partition(self, partition: int) -> dict[str, Any] | None:
        """The watermark tracker of one partition (moves with the partition to another worker)."""
        part = self.partitions.get(partition)
        return None if part is None else part.tracker.snapshot()

    def restore_partition(self, partition: int, tracker: dict[str, Any]) -> None:
        part = _Partition(self.delay)
        part.tracker = kernels.WatermarkTracker.restore(tracker)
        part.watermark = part.tracker.current
        self.partitions[partition] = part

    def snapshot(self) -> dict[str, Any]:
        return {
            "partitions": {pid: part.tracker.snapshot() for pid, part in self.partitions.items()},
            "watermark": self.watermark,
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.partitions = {}
        for pid, tracker in snapshot["partitions"].items():
            part = _Partition(self.delay)
            part.tracker = kernels.WatermarkTracker.restore(tracker)
            part.watermark = part.tracker.current
            self.partitions[int(pid)] = part
        self.watermark = snapshot["watermark"]


def _missing_timestamps_error(step: str, n: int, timestamps: Any) -> Exception:
    from engine.errors import ConnectorError

    got = "none" if timestamps is None else f"{len(timestamps)}"
    return ConnectorError(
        f"source {step!r} has no timestamp= and its chunk of {n} records carries {got} timestamps; "
        f"the source must provide one timestamp per record (or give the flow a timestamp=)"
    )
