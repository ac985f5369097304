"""Slow, obviously-correct pure-Python twin of every compiled kernel in `engine/_core.pyx`.

Same API, same errors (via `engine._checks`), same snapshots as `_core.pyi` describes. It exists for
the differential tests and for ``ENGINE_NO_EXTENSIONS=1``; the runtime reaches it only through
`engine.kernels`. Clarity beats speed here: plain loops and dicts, one record at a time.
"""

from __future__ import annotations

import numpy as np

from engine import _checks
from engine._kernel_types import (
    INT64_MAX,
    INT64_MIN,
    LEFT,
    RIGHT,
    FiredSessions,
    FiredWindows,
    JoinPairs,
)

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "LEFT",
    "RIGHT",
    "FiredSessions",
    "FiredWindows",
    "IntervalJoinBuffers",
    "JoinPairs",
    "KeyInterner",
    "SessionTable",
    "WatermarkTracker",
    "WindowAggTable",
    "combine_watermarks",
    "late_mask",
    "sliding_windows",
    "tumbling_starts",
]


# ==== window assignment ==============================================================================


def tumbling_starts(ts, size, offset=0):
    raise NotImplementedError("tumbling_starts")


def sliding_windows(ts, size, slide, offset=0):
    raise NotImplementedError("sliding_windows")


# ==== end of window assignment =======================================================================


# ==== watermarks =====================================================================================


class WatermarkTracker:
    pass


def late_mask(watermarks, window_ends, lateness):
    raise NotImplementedError("late_mask")


def combine_watermarks(watermarks, idle):
    raise NotImplementedError("combine_watermarks")


# ==== end of watermarks ==============================================================================


# ==== key interning ==================================================================================


class KeyInterner:
    pass


# ==== end of key interning ===========================================================================


# ==== windowed aggregation ===========================================================================


class WindowAggTable:
    pass


# ==== end of windowed aggregation ====================================================================


# ==== session windows ================================================================================


class SessionTable:
    pass


# ==== end of session windows =========================================================================


# ==== interval join ==================================================================================

import bisect  # noqa: E402  (imported here to keep each kernel's twin within its own section)
import sys  # noqa: E402


class IntervalJoinBuffers:
    """Per-key left and right buffers of ``(ts, row_id)``, each kept sorted; see `_core.pyi`.

    A left ``l`` and right ``r`` of one key match when ``l.ts + lower <= r.ts <= l.ts + upper`` (each
    bound exclusive by flag), computed with exact Python ints: saturation applies to purge times only,
    so a bound beyond the int64 range still matches as arithmetic says. ``nbytes`` estimates the memory
    of this implementation's dicts, lists and tuples; it is not comparable with the compiled kernel's.
    """

    def __init__(self, lower, upper, lower_exclusive=False, upper_exclusive=False):
        self._lower, self._upper = _checks.interval_bounds(lower, upper)
        self._lower_exclusive = _checks.flag("lower_exclusive", lower_exclusive)
        self._upper_exclusive = _checks.flag("upper_exclusive", upper_exclusive)
        # side -> {key_id: [(ts, row_id), ...] sorted}; a key with nothing buffered has no entry
        self._buffers = ({}, {})

    def _other_range(self, side, ts):
        """Inclusive range ``[lo, hi]`` of the other side's timestamps that match a record at ``ts``."""
        if side == LEFT:  # right r matches when ts + lower <= r.ts <= ts + upper
            lo = ts + self._lower + (1 if self._lower_exclusive else 0)
            hi = ts + self._upper - (1 if self._upper_exclusive else 0)
        else:  # left l matches when l.ts + lower <= ts <= l.ts + upper, i.e. ts - upper <= l.ts <= ts - lower
            lo = ts - self._upper + (1 if self._upper_exclusive else 0)
            hi = ts - self._lower - (1 if self._lower_exclusive else 0)
        return lo, hi

    def _matches(self, left_ts, right_ts):
        if self._lower_exclusive:
            above = left_ts + self._lower < right_ts
        else:
            above = left_ts + self._lower <= right_ts
        if self._upper_exclusive:
            below = right_ts < left_ts + self._upper
        else:
            below = right_ts <= left_ts + self._upper
        return above and below

    def process(self, side, key_ids, ts, row_ids, wm_before):
        side = _checks.side(side)
        key_ids = _checks.int64_column("key_ids", key_ids)
        ts = _checks.int64_column("ts", ts)
        row_ids = _checks.int64_column("row_ids", row_ids)
        wm_before = _checks.int64_column("wm_before", wm_before)
        n = _checks.same_length(key_ids=key_ids, ts=ts, row_ids=row_ids, wm_before=wm_before)
        own, other = self._buffers[side], self._buffers[1 - side]
        late = np.zeros(n, dtype=np.bool_)
        left_rows, right_rows = [], []
        records = zip(key_ids.tolist(), ts.tolist(), row_ids.tolist(), wm_before.tolist())
        for i, (key, t, row, wm) in enumerate(records):
            if t <= wm:
                late[i] = True
                continue
            candidates = other.get(key, [])
            lo, hi = self._other_range(side, t)
            start = bisect.bisect_left(candidates, (lo,))  # first with ts >= lo
            stop = bisect.bisect_left(candidates, (hi + 1,))  # first with ts > hi
            for other_ts, other_row in candidates[start:stop]:
                left, right = ((t, row), (other_ts, other_row)) if side == LEFT else ((other_ts, other_row), (t, row))
                if self._matches(left[0], right[0]):  # always true inside the range; kept as the definition
                    left_rows.append(left[1])
                    right_rows.append(right[1])
            bisect.insort(own.setdefault(key, []), (t, row))
        return JoinPairs(
            np.array(left_rows, dtype=np.int64), np.array(right_rows, dtype=np.int64), late
        )

    def purge(self, watermark):
        watermark = _checks.integer("watermark", watermark)
        purged = []
        for side in (LEFT, RIGHT):
            buffers = self._buffers[side]
            gone = []
            for key, entries in buffers.items():
                keep = 0
                while keep < len(entries) and watermark >= self._purge_time(side, entries[keep][0]):
                    gone.append(entries[keep])
                    keep += 1
                del entries[:keep]
            for key in [key for key, entries in buffers.items() if not entries]:
                del buffers[key]
            gone.sort()
            purged.append(np.array([row for _, row in gone], dtype=np.int64))
        return purged[LEFT], purged[RIGHT]

    def _purge_time(self, side, ts):
        """The watermark from which a buffered record can match nothing more (saturating)."""
        if side == LEFT:
            return _checks.saturating_add(ts, self._upper)
        return _checks.saturating_add(ts, -self._lower)

    def __len__(self):
        return sum(len(entries) for buffers in self._buffers for entries in buffers.values())

    @property
    def nbytes(self):
        total = sys.getsizeof(self._buffers)
        for buffers in self._buffers:
            total += sys.getsizeof(buffers)
            for key, entries in buffers.items():
                total += sys.getsizeof(key) + sys.getsizeof(entries)
                total += sum(sys.getsizeof(entry) + sys.getsizeof(entry[0]) + sys.getsizeof(entry[1]) for entry in entries)
        return total

    def snapshot(self):
        """Bounds, flags and both sides' buffers as int64 arrays sorted by ``(key_id, ts, row_id)``."""
        result = {
            "lower": self._lower,
            "upper": self._upper,
            "lower_exclusive": self._lower_exclusive,
            "upper_exclusive": self._upper_exclusive,
        }
        for side, name in ((LEFT, "left"), (RIGHT, "right")):
            triples = sorted(
                (key, t, row) for key, entries in self._buffers[side].items() for t, row in entries
            )
            result[f"{name}_key_ids"] = np.array([k for k, _, _ in triples], dtype=np.int64)
            result[f"{name}_ts"] = np.array([t for _, t, _ in triples], dtype=np.int64)
            result[f"{name}_row_ids"] = np.array([r for _, _, r in triples], dtype=np.int64)
        return result

    @classmethod
    def restore(cls, snapshot):
        lower, upper, lower_exclusive, upper_exclusive, arrays = _checks.interval_join_snapshot(snapshot)
        buffers = cls(lower, upper, lower_exclusive, upper_exclusive)
        for side, name in ((LEFT, "left"), (RIGHT, "right")):
            keys, ts, rows = (arrays[f"{name}_{col}"] for col in ("key_ids", "ts", "row_ids"))
            for key, t, row in zip(keys.tolist(), ts.tolist(), rows.tolist()):
                buffers._buffers[side].setdefault(key, []).append((t, row))
        return buffers


# ==== end of interval join ===========================================================================
