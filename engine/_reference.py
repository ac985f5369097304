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
    """Reference `WindowAggTable`: a dict ``(key_id, start) -> _Window``, one record at a time.

    Same contract as the compiled table (see `engine/_core.pyi` and `engine/_kernels/aggregation.pxi`):
    ``fire(W)`` emits every window with ``W >= end - 1`` that has additions not yet emitted, sorted by
    ``(end, start, key_id)``; ``purge(W)`` drops windows with ``W >= end - 1 + lateness`` (saturating)
    and refuses (``ValueError``) to drop a window whose additions were never emitted.
    """

    class _Window:
        __slots__ = ("count", "sums", "mins", "maxs", "emitted", "dirty")

        def __init__(self, count, sums, mins, maxs, emitted, dirty):
            self.count = count
            self.sums = sums
            self.mins = mins
            self.maxs = maxs
            self.emitted = emitted
            self.dirty = dirty

    def __init__(self, size, lateness, n_values):
        self._size = _checks.positive("size", size)
        self._lateness = _checks.non_negative("lateness", lateness)
        self._n_values = _checks.value_columns("n_values", n_values)
        self._windows = {}

    @property
    def size(self):
        return self._size

    @property
    def lateness(self):
        return self._lateness

    @property
    def n_values(self):
        return self._n_values

    def add(self, key_ids, starts, values):
        key_ids = _checks.int64_column("key_ids", key_ids)
        starts = _checks.int64_column("starts", starts)
        n = _checks.same_length(key_ids=key_ids, starts=starts)
        values = _checks.float64_matrix("values", values, n, self._n_values)
        _checks.window_ends_fit("starts", starts, self._size)
        for i in range(n):
            key = (int(key_ids[i]), int(starts[i]))
            row = [float(v) for v in values[i]]
            window = self._windows.get(key)
            if window is None:
                self._windows[key] = self._Window(1, list(row), list(row), list(row), False, True)
                continue
            window.count += 1
            window.dirty = True
            for j, v in enumerate(row):
                window.sums[j] += v
                window.mins[j] = _nan_ignoring(min, window.mins[j], v)
                window.maxs[j] = _nan_ignoring(max, window.maxs[j], v)

    def fire(self, watermark):
        watermark = _checks.integer("watermark", watermark)
        due = [
            (start + self._size, start, key)
            for (key, start), w in self._windows.items()
            if w.dirty and watermark >= start + self._size - 1
        ]
        due.sort()
        windows = [self._windows[(key, start)] for _, start, key in due]
        for w in windows:
            w.dirty = False
            w.emitted = True
        nv = self._n_values
        return FiredWindows(
            key_ids=np.array([key for _, _, key in due], dtype=np.int64),
            starts=np.array([start for _, start, _ in due], dtype=np.int64),
            ends=np.array([end for end, _, _ in due], dtype=np.int64),
            counts=np.array([w.count for w in windows], dtype=np.int64),
            sums=np.array([w.sums for w in windows], dtype=np.float64).reshape(len(due), nv),
            mins=np.array([w.mins for w in windows], dtype=np.float64).reshape(len(due), nv),
            maxs=np.array([w.maxs for w in windows], dtype=np.float64).reshape(len(due), nv),
        )

    def _purge_at(self, start):
        return _checks.saturating_add(start + self._size - 1, self._lateness)

    def purge(self, watermark):
        watermark = _checks.integer("watermark", watermark)
        unemitted = [start + self._size for (_, start), w in self._windows.items() if w.dirty]
        if unemitted and watermark >= _checks.saturating_add(min(unemitted) - 1, self._lateness):
            raise ValueError(
                f"purge(watermark={watermark}) would drop windows with additions not yet emitted "
                f"(earliest end {min(unemitted)}); call fire(watermark) before purge(watermark)"
            )
        kept = {k: w for k, w in self._windows.items() if watermark < self._purge_at(k[1])}
        dropped = len(self._windows) - len(kept)
        self._windows = kept  # a new dict: CPython dicts never shrink on deletion
        return dropped

    def __len__(self):
        return len(self._windows)

    @property
    def nbytes(self):
        import sys

        total = sys.getsizeof(self._windows)
        for key, w in self._windows.items():
            total += sys.getsizeof(key) + sys.getsizeof(w)
            total += sys.getsizeof(w.sums) + sys.getsizeof(w.mins) + sys.getsizeof(w.maxs)
        return total

    def snapshot(self):
        items = sorted(self._windows.items(), key=lambda kv: (kv[0][1], kv[0][0]))
        m, nv = len(items), self._n_values
        return {
            "size": self._size,
            "lateness": self._lateness,
            "n_values": nv,
            "key_ids": np.array([k for (k, _), _ in items], dtype=np.int64),
            "starts": np.array([s for (_, s), _ in items], dtype=np.int64),
            "counts": np.array([w.count for _, w in items], dtype=np.int64),
            "sums": np.array([w.sums for _, w in items], dtype=np.float64).reshape(m, nv),
            "mins": np.array([w.mins for _, w in items], dtype=np.float64).reshape(m, nv),
            "maxs": np.array([w.maxs for _, w in items], dtype=np.float64).reshape(m, nv),
            "emitted": np.array([w.emitted for _, w in items], dtype=np.bool_),
            "dirty": np.array([w.dirty for _, w in items], dtype=np.bool_),
        }

    @classmethod
    def restore(cls, snapshot):
        size, lateness, n_values, key_ids, starts, counts, sums, mins, maxs, emitted, dirty = (
            _checks.window_agg_snapshot(snapshot)
        )
        table = cls(size, lateness, n_values)
        for i in range(len(key_ids)):
            table._windows[(int(key_ids[i]), int(starts[i]))] = cls._Window(
                int(counts[i]),
                [float(v) for v in sums[i]],
                [float(v) for v in mins[i]],
                [float(v) for v in maxs[i]],
                bool(emitted[i]),
                bool(dirty[i]),
            )
        return table


def _nan_ignoring(pick, current, value):
    """min/max that ignores NaN: NaN only while every value seen is NaN."""
    if value != value:
        return current
    if current != current:
        return value
    return pick(current, value)


# ==== end of windowed aggregation ====================================================================


# ==== session windows ================================================================================


class SessionTable:
    pass


# ==== end of session windows =========================================================================


# ==== interval join ==================================================================================


class IntervalJoinBuffers:
    pass


# ==== end of interval join ===========================================================================
