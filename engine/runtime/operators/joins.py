"""The keyed interval join over `kernels.IntervalJoinBuffers`, with a row store freed on purge.

The kernel buffers row ids; the records themselves live here, in one dict per side, and are dropped
as soon as the kernel purges their ids (so memory is bounded by the watermark, not by the stream).
A record from one input sees the minimum of its own per-record watermark and the other input's
current watermark; a record with ``ts <= W`` is late, dropped and counted (SEMANTICS.md, "Interval
join"). Pairs are emitted in probe-record order with event time ``max(left.ts, right.ts)``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from engine import kernels
from engine.batch import Batch
from engine.dead_letters import DeadLetter
from engine.runtime.operators.base import InputWatermarks, Operator, Output
from engine.state.codec import frozen

__all__ = ["IntervalJoinOperator"]


class IntervalJoinOperator(Operator):
    def __init__(self, step: str, lower: int, upper: int, lower_exclusive: bool, upper_exclusive: bool,
                 combine: Callable[[Any, Any], Any] | None, origins: list[str], domain: Any = None) -> None:
        super().__init__(step)
        self.buffers = kernels.IntervalJoinBuffers(lower, upper, lower_exclusive, upper_exclusive)
        self.combine = combine
        self.inputs = InputWatermarks(2, origins)
        self.rows: tuple[dict[int, Any], dict[int, Any]] = ({}, {})  # row id -> record, per side
        self.row_ts: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self.next_row = 0
        self.watermark = kernels.INT64_MIN
        self.what = f"combine function {getattr(combine, '__qualname__', 'callable')}" if combine else ""
        if domain is not None:
            domain.holders.append(self)

    def live_key_ids(self) -> np.ndarray:
        state = self.buffers.snapshot()
        return np.concatenate([state["left_key_ids"], state["right_key_ids"]])

    def remap_key_ids(self, mapping: np.ndarray) -> None:
        state = self.buffers.snapshot()
        state["left_key_ids"] = mapping[state["left_key_ids"]]
        state["right_key_ids"] = mapping[state["right_key_ids"]]
        self.buffers = kernels.IntervalJoinBuffers.restore(state)

    def process(self, batch: Batch, input_index: int) -> Output:
        side = kernels.LEFT if input_index == 0 else kernels.RIGHT
        errors: list[DeadLetter] = []
        late_count = 0
        late = None
        out_records: list[Any] = []
        out_ts = np.empty(0, dtype=np.int64)
        out_wm = np.empty(0, dtype=np.int64)
        n = len(batch)
        if n:
            wm = np.maximum(self.inputs.per_record(batch.origin, batch.wm), np.int64(self.watermark))
            base = self.next_row
            row_ids = np.arange(base, base + n, dtype=np.int64)
            self.next_row += n
            pairs = self.buffers.process(side, batch.key_ids, batch.ts, row_ids, wm)
            late_count = int(pairs.late.sum())
            if late_count:
                late = batch.take(pairs.late)
            records = batch.records
            store, store_ts = self.rows[side], self.row_ts[side]
            on_time = np.flatnonzero(~pairs.late) if late_count else range(n)
            ts_list = batch.ts.tolist()
            for i in (on_time.tolist() if late_count else on_time):
                store[base + i] = records[i]
                store_ts[base + i] = ts_list[i]
            if len(pairs.left_rows):
                out_records, out_ts, out_wm, errors = self._emit(pairs, side, base, wm)
        self.inputs.update(input_index, batch)
        self.watermark = max(self.watermark, self.inputs.combined())
        left_gone, right_gone = self.buffers.purge(self.watermark)
        for side_index, gone in ((0, left_gone), (1, right_gone)):
            store, store_ts = self.rows[side_index], self.row_ts[side_index]
            for row in gone.tolist():
                del store[row]
                del store_ts[row]
        main = Batch(out_ts, out_wm, records=out_records, origin=batch.origin, partition=batch.partition,
                     watermark=self.watermark, idle=self.inputs.all_idle())
        return Output(main, late=late, errors=errors, late_count=late_count)

    def _emit(self, pairs: Any, side: int, base: int, wm: np.ndarray) -> tuple[list, np.ndarray, np.ndarray, list]:
        left_rows = pairs.left_rows.tolist()
        right_rows = pairs.right_rows.tolist()
        left, right = self.rows
        left_ts, right_ts = self.row_ts
        probe = pairs.left_rows if side == kernels.LEFT else pairs.right_rows
        pair_wm = wm[probe - base]
        pair_ts = np.array([max(left_ts[lr], right_ts[rr]) for lr, rr in zip(left_rows, right_rows)], dtype=np.int64)
        if self.combine is None:
            return [(left[lr], right[rr]) for lr, rr in zip(left_rows, right_rows)], pair_ts, pair_wm, []
        out: list[Any] = []
        keep: list[int] = []
        errors: list[DeadLetter] = []
        for j, (lr, rr) in enumerate(zip(left_rows, right_rows)):
            pair = (left[lr], right[rr])
            try:
                out.append(self.combine(*pair))
                keep.append(j)
            except Exception as exc:  # routed to dead letters with both records
                errors.append(DeadLetter(self.step, f"{self.what} raised {type(exc).__name__}: {exc}", pair))
        if errors:
            pair_ts, pair_wm = pair_ts[keep], pair_wm[keep]
        return out, pair_ts, pair_wm, errors

    def state_size(self) -> int:
        return len(self.buffers)

    def snapshot(self) -> dict[str, Any]:
        # The row store holds user records; a checkpointing run serialises them with the job's codec.
        rows = []
        for store, store_ts in zip(self.rows, self.row_ts):
            ids = sorted(store)
            rows.append(frozen({
                "row_ids": np.array(ids, dtype=np.int64),
                "ts": np.array([store_ts[i] for i in ids], dtype=np.int64),
                "records": [store[i] for i in ids],
            }))
        return {
            "buffers": frozen(self.buffers.snapshot()), "watermark": self.watermark, "next_row": self.next_row,
            "input_watermarks": self.inputs.watermarks.copy(), "rows": rows,
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.buffers = kernels.IntervalJoinBuffers.restore(snapshot["buffers"])
        self.watermark = snapshot["watermark"]
        self.next_row = snapshot["next_row"]
        self.inputs.watermarks[:] = snapshot["input_watermarks"]
        self.rows = ({}, {})
        self.row_ts = ({}, {})
        for side, saved in enumerate(snapshot["rows"]):
            for row, ts, record in zip(saved["row_ids"].tolist(), saved["ts"].tolist(), saved["records"]):
                self.rows[side][row] = record
                self.row_ts[side][row] = ts
