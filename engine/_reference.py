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


def _session_nan_min(current: float, value: float) -> float:
    """``min`` that ignores NaN (NaN only when both are NaN); the kernel's rule, step for step."""
    if value == value and (current != current or value < current):
        return value
    return current


def _session_nan_max(current: float, value: float) -> float:
    if value == value and (current != current or value > current):
        return value
    return current


class _Session:
    """One live session of one key and its aggregates."""

    __slots__ = ("key", "start", "end", "count", "sums", "mins", "maxs", "dirty", "emitted", "pending")

    def __init__(self, key: int, start: int, end: int, n_values: int) -> None:
        self.key = key
        self.start = start
        self.end = end
        self.count = 0
        self.sums = [0.0] * n_values
        self.mins = [float("nan")] * n_values
        self.maxs = [float("nan")] * n_values
        self.dirty = True  # holds changes not yet returned by fire
        self.emitted = False  # fired at least once with its current (start, end)
        self.pending: list[tuple[int, int]] = []  # emitted bounds of sessions merged into this one

    def absorb(self, other: "_Session") -> None:
        self.count += other.count
        for c in range(len(self.sums)):
            self.sums[c] = self.sums[c] + other.sums[c]
            self.mins[c] = _session_nan_min(self.mins[c], other.mins[c])
            self.maxs[c] = _session_nan_max(self.maxs[c], other.maxs[c])

    def add_record(self, row: list[float]) -> None:
        self.count += 1
        for c, v in enumerate(row):
            self.sums[c] = self.sums[c] + v
            self.mins[c] = _session_nan_min(self.mins[c], v)
            self.maxs[c] = _session_nan_max(self.maxs[c], v)


class SessionTable:
    """Per-key session windows with gap ``gap``; see `engine._core.SessionTable` for the contract.

    Reference implementation: every key holds a plain list of `_Session`; each record scans its key's
    list for the sessions it touches.
    """

    def __init__(self, gap, lateness, n_values):
        self._gap = _checks.positive("gap", gap)
        self._lateness = _checks.non_negative("lateness", lateness)
        self._n_values = _checks.non_negative("n_values", n_values)
        self._watermark = INT64_MIN  # highest watermark seen (records' wm_before and purge)
        self._by_key: dict[int, list[_Session]] = {}

    @property
    def gap(self) -> int:
        return self._gap

    @property
    def lateness(self) -> int:
        return self._lateness

    @property
    def n_values(self) -> int:
        return self._n_values

    def _cleanup_time(self, session_end: int) -> int:
        return _checks.saturating_add(session_end - 1, self._lateness)

    def add(self, key_ids, ts, values, wm_before):
        key_ids = _checks.int64_column("key_ids", key_ids)
        ts = _checks.int64_column("ts", ts)
        wm_before = _checks.int64_column("wm_before", wm_before)
        n = _checks.same_length(key_ids=key_ids, ts=ts, wm_before=wm_before)
        values = _checks.float64_matrix("values", values, n, self._n_values)
        _checks.span_end_fits("ts", ts, self._gap, "session end")
        late = np.zeros(n, dtype=np.bool_)
        for i in range(n):
            late[i] = not self._add_one(int(key_ids[i]), int(ts[i]), [float(v) for v in values[i]], int(wm_before[i]))
        return late

    def _add_one(self, key: int, t: int, row: list[float], wm: int) -> bool:
        """Add one record; False when it is late (nothing changes)."""
        self._watermark = max(self._watermark, wm)
        w = self._watermark
        end = t + self._gap
        sessions = self._by_key.get(key, [])
        # Sessions already past their cleanup time are out of reach, whether or not purge ran yet.
        touched = sorted(
            (s for s in sessions if w < self._cleanup_time(s.end) and s.start <= end and t <= s.end),
            key=lambda s: (s.start, s.end),
        )
        new_start = min([t] + [s.start for s in touched])
        new_end = max([end] + [s.end for s in touched])
        if w >= self._cleanup_time(new_end):
            return False
        if touched:
            target = touched[0]
        else:
            target = _Session(key, t, end, self._n_values)
            self._by_key.setdefault(key, []).append(target)
        for s in touched:
            if s.emitted and (s.start, s.end) != (new_start, new_end):
                target.pending.append((s.start, s.end))
            if s is not target:
                target.absorb(s)
                target.pending.extend(s.pending)
                sessions.remove(s)
        target.emitted = target.emitted and (target.start, target.end) == (new_start, new_end) and len(touched) == 1
        target.start, target.end = new_start, new_end
        target.add_record(row)
        target.dirty = True
        return True

    def _live(self) -> list[_Session]:
        return [s for sessions in self._by_key.values() for s in sessions]

    def fire(self, watermark):
        w = _checks.integer("watermark", watermark)
        due = sorted((s for s in self._live() if s.dirty and w >= s.end - 1), key=lambda s: (s.end, s.start, s.key))
        merged = []
        for s in due:
            merged.extend((s.key, start, end) for start, end in s.pending)
            s.pending = []
            s.dirty = False
            s.emitted = True
        merged.sort(key=lambda m: (m[2], m[1], m[0]))
        nv = self._n_values
        return FiredSessions(
            key_ids=np.array([s.key for s in due], dtype=np.int64),
            starts=np.array([s.start for s in due], dtype=np.int64),
            ends=np.array([s.end for s in due], dtype=np.int64),
            counts=np.array([s.count for s in due], dtype=np.int64),
            sums=np.array([s.sums for s in due], dtype=np.float64).reshape(len(due), nv),
            mins=np.array([s.mins for s in due], dtype=np.float64).reshape(len(due), nv),
            maxs=np.array([s.maxs for s in due], dtype=np.float64).reshape(len(due), nv),
            merged_key_ids=np.array([m[0] for m in merged], dtype=np.int64),
            merged_starts=np.array([m[1] for m in merged], dtype=np.int64),
            merged_ends=np.array([m[2] for m in merged], dtype=np.int64),
        )

    def purge(self, watermark):
        w = _checks.integer("watermark", watermark)
        self._watermark = max(self._watermark, w)
        dropped = 0
        for key in list(self._by_key):
            kept = [s for s in self._by_key[key] if w < self._cleanup_time(s.end)]
            dropped += len(self._by_key[key]) - len(kept)
            if kept:
                self._by_key[key] = kept
            else:
                del self._by_key[key]
        return dropped

    def __len__(self):
        return sum(len(sessions) for sessions in self._by_key.values())

    @property
    def nbytes(self):
        """An estimate: the compiled kernel's per-session layout times the live sessions (no slack)."""
        live = self._live()
        per_session = 40 + 24 * self._n_values + 4  # slot, three value columns, its key-vector entry
        return len(live) * per_session + sum(len(s.pending) for s in live) * 24 + len(self._by_key) * 56

    def snapshot(self):
        live = sorted(self._live(), key=lambda s: (s.key, s.start, s.end))
        index = {id(s): i for i, s in enumerate(live)}
        merged = sorted((s.key, start, end, index[id(s)]) for s in live for start, end in s.pending)
        nv = self._n_values
        return {
            "gap": self._gap,
            "lateness": self._lateness,
            "n_values": nv,
            "watermark": self._watermark,
            "key_ids": np.array([s.key for s in live], dtype=np.int64),
            "starts": np.array([s.start for s in live], dtype=np.int64),
            "ends": np.array([s.end for s in live], dtype=np.int64),
            "counts": np.array([s.count for s in live], dtype=np.int64),
            "sums": np.array([s.sums for s in live], dtype=np.float64).reshape(len(live), nv),
            "mins": np.array([s.mins for s in live], dtype=np.float64).reshape(len(live), nv),
            "maxs": np.array([s.maxs for s in live], dtype=np.float64).reshape(len(live), nv),
            "dirty": np.array([s.dirty for s in live], dtype=np.bool_),
            "emitted": np.array([s.emitted for s in live], dtype=np.bool_),
            "merged_key_ids": np.array([m[0] for m in merged], dtype=np.int64),
            "merged_starts": np.array([m[1] for m in merged], dtype=np.int64),
            "merged_ends": np.array([m[2] for m in merged], dtype=np.int64),
            "merged_owners": np.array([m[3] for m in merged], dtype=np.int64),
        }

    @classmethod
    def restore(cls, snapshot):
        snap = _checks.session_snapshot(snapshot)
        table = cls(snap["gap"], snap["lateness"], snap["n_values"])
        table._watermark = snap["watermark"]
        live = []
        for i in range(len(snap["key_ids"])):
            s = _Session(int(snap["key_ids"][i]), int(snap["starts"][i]), int(snap["ends"][i]), snap["n_values"])
            s.count = int(snap["counts"][i])
            s.sums = [float(v) for v in snap["sums"][i]]
            s.mins = [float(v) for v in snap["mins"][i]]
            s.maxs = [float(v) for v in snap["maxs"][i]]
            s.dirty = bool(snap["dirty"][i])
            s.emitted = bool(snap["emitted"][i])
            table._by_key.setdefault(s.key, []).append(s)
            live.append(s)
        for j in range(len(snap["merged_owners"])):
            live[int(snap["merged_owners"][j])].pending.append((int(snap["merged_starts"][j]), int(snap["merged_ends"][j])))
        return table


# ==== end of session windows =========================================================================


# ==== interval join ==================================================================================


class IntervalJoinBuffers:
    pass


# ==== end of interval join ===========================================================================
