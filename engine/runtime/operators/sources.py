"""The source operator: event time extraction and the per-record watermark rule, per partition.

Each source partition has its own `kernels.WatermarkTracker`. The watermark in force before record
``i`` of a partition is computed from records ``0..i-1`` of that partition, including records that a
later step filters out (SEMANTICS.md, "Per-record rule"); it travels with the batch as the ``wm``
column. With several partitions a record also sees the current watermark of the other active
partitions (the minimum), and the source's watermark is `kernels.combine_watermarks` over them.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from engine import kernels
from engine.batch import Batch
from engine.dead_letters import DeadLetter
from engine.io import SourceChunk
from engine.runtime.extract import call_per_record, field_values, good_index, timestamp_column
from engine.runtime.operators.base import INT64_MAX, Operator, Output, PartitionWatermarks, dead_letters_for
from engine.time import BoundedOutOfOrderness

__all__ = ["SourceOperator"]


class SourceOperator(Operator):
    """Turns `SourceChunk` objects into batches with ``ts`` and per-record ``wm`` columns."""

    def __init__(
        self,
        step: str,
        partitions: list[int],
        timestamp: str | Callable[[Any], int],
        watermark: BoundedOutOfOrderness,
    ) -> None:
        super().__init__(step)
        self.timestamp = timestamp
        self.delay = watermark.delay
        self.idle_timeout = watermark.idle_timeout
        self.partition_index = {p: i for i, p in enumerate(partitions)}
        self.trackers = [kernels.WatermarkTracker(self.delay) for _ in partitions]
        self.inputs = PartitionWatermarks(len(partitions))
        self.last_seen = [time.monotonic()] * len(partitions)
        self.watermark = kernels.INT64_MIN

    # ---- chunks ----

    def process_chunk(self, chunk: SourceChunk) -> Output:
        index = self.partition_index[chunk.partition]
        errors = [
            DeadLetter(self.step, f"undecodable input: {reason}", raw, None, None) for raw, reason in chunk.errors
        ]
        self.last_seen[index] = time.monotonic()
        records = chunk.records
        columns = chunk.columns
        if columns is not None and isinstance(self.timestamp, str):
            ts, problems = timestamp_column(columns[self.timestamp], self.timestamp)
            if problems:  # only possible for object columns; route the rows as records
                records = Batch(np.empty(0, np.int64), np.empty(0, np.int64), columns=columns).records
                errors += dead_letters_for(self.step, records, problems)
                keep = good_index(len(records), problems)
                columns = {name: col[keep] for name, col in columns.items()}
        else:
            if records is None:
                records = Batch(np.empty(0, np.int64), np.empty(0, np.int64), columns=columns or {}).records
                columns = None
            ts, problems = self._record_timestamps(records)
            if problems:
                errors += dead_letters_for(self.step, records, problems)
                keep = good_index(len(records), problems).tolist()
                records = [records[i] for i in keep]
        wm = self.trackers[index].advance(ts)
        self.inputs.update(index, self.trackers[index].current, False)
        wm = self.inputs.per_record(index, wm)
        self.watermark = max(self.watermark, self.inputs.combined())
        batch = Batch(ts, wm, columns=columns, records=records if columns is None else None,
                      origin=self.step, partition=chunk.partition, watermark=self.watermark)
        return Output(batch, errors=errors)

    def _record_timestamps(self, records: list) -> tuple[np.ndarray, list]:
        if isinstance(self.timestamp, str):
            values, problems = field_values(records, self.timestamp)
            if not problems:
                return timestamp_column(values, self.timestamp)
            # Map positions in the good subset back to record positions for the type check.
            present = good_index(len(records), problems)
            ts, type_problems = timestamp_column(values, self.timestamp)
            for p in type_problems:
                p.index = int(present[p.index])
            bad = sorted(problems + type_problems, key=lambda p: p.index)
            return ts, bad
        values, problems = call_per_record(self.timestamp, records, "timestamp function")
        present = good_index(len(records), problems)
        ts, type_problems = timestamp_column(values, "timestamp")
        for p in type_problems:
            p.index = int(present[p.index])
        return ts, sorted(problems + type_problems, key=lambda p: p.index)

    # ---- time passing without data ----

    def end_partition(self, partition: int) -> Output:
        """The partition is exhausted: its watermark becomes INT64_MAX."""
        index = self.partition_index[partition]
        self.trackers[index].end_input()
        self.inputs.update(index, INT64_MAX, False)
        self.watermark = max(self.watermark, self.inputs.combined())
        return Output(Batch.empty(self.watermark, origin=self.step, partition=partition))

    def tick(self, now: float) -> Output | None:
        """Mark partitions silent for ``idle_timeout`` as idle; an output only when something changed."""
        if self.idle_timeout is None:
            return None
        changed = False
        for index, seen in enumerate(self.last_seen):
            is_idle = (now - seen) * 1000.0 >= self.idle_timeout and not self.trackers[index].ended
            if is_idle and not self.inputs.idle[index]:
                self.inputs.update(index, self.trackers[index].current, True)
                changed = True
        if not changed:
            return None
        self.watermark = max(self.watermark, self.inputs.combined())
        return Output(Batch.empty(self.watermark, origin=self.step, idle=self.inputs.all_idle()))

    def snapshot(self) -> dict[str, Any]:
        return {"trackers": [t.snapshot() for t in self.trackers], "watermark": self.watermark}

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.trackers = [kernels.WatermarkTracker.restore(s) for s in snapshot["trackers"]]
        self.watermark = snapshot["watermark"]
