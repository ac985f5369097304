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
    """Start of each timestamp's tumbling window: ``offset + floor((ts - offset) / size) * size``.

    ``-size < offset < size``. A window ``[start, start + size)`` that does not fit in int64 raises
    ``ValueError`` naming the first such timestamp.
    """
    ts = _checks.int64_column("ts", ts)
    size = _checks.positive("size", size)
    offset = _checks.offset_within("offset", offset, "size", size)
    starts = []
    for i, t in enumerate(ts.tolist()):
        start = offset + (t - offset) // size * size
        if start < INT64_MIN or start + size > INT64_MAX:
            raise _checks.tumbling_window_error(i, t, size, offset)
        starts.append(start)
    return np.array(starts, dtype=np.int64)


def sliding_windows(ts, size, slide, offset=0):
    """``(rows, starts)``: every sliding window ``s`` of each record, by row then start ascending.

    ``s ≡ offset (mod slide)`` and ``ts - size < s <= ts``; with ``size < slide`` a record may belong
    to no window. A record with any window ``[s, s + size)`` outside int64 raises ``ValueError``.
    """
    ts = _checks.int64_column("ts", ts)
    size = _checks.positive("size", size)
    slide = _checks.positive("slide", slide)
    offset = _checks.offset_within("offset", offset, "slide", slide)
    rows = []
    starts = []
    for i, t in enumerate(ts.tolist()):
        mine = []
        s = offset + (t - offset) // slide * slide  # the latest window start <= t
        while s > t - size:
            mine.append(s)
            s -= slide
        mine.reverse()
        for s in mine:
            if s < INT64_MIN or s + size > INT64_MAX:
                raise _checks.sliding_window_error(i, t, size, slide, offset)
        rows.extend([i] * len(mine))
        starts.extend(mine)
    return np.array(rows, dtype=np.int64), np.array(starts, dtype=np.int64)


# ==== end of window assignment =======================================================================


# ==== watermarks =====================================================================================


class WatermarkTracker:
    """``BoundedOutOfOrderness(delay)`` for one input partition, under the per-record rule.

    The watermark is ``max_ts - delay - 1`` (saturating) over the records absorbed so far, INT64_MIN
    before any record and INT64_MAX once `end_input` was called. Records given to `advance` after
    `end_input` all see INT64_MAX (so they are late), as in Flink after the final watermark.
    """

    def __init__(self, delay):
        self._delay = _checks.non_negative("delay", delay)
        self._max_ts = INT64_MIN
        self._ended = False

    @property
    def delay(self):
        return self._delay

    @property
    def max_ts(self):
        return self._max_ts

    @property
    def ended(self):
        return self._ended

    @property
    def current(self):
        return self._watermark_of(self._max_ts)

    def _watermark_of(self, max_ts):
        if self._ended:
            return INT64_MAX
        return _checks.saturating_add(_checks.saturating_add(max_ts, -self._delay), -1)

    def advance(self, ts):
        """The watermark in force before each record (from earlier records only); then absorb them."""
        ts = _checks.int64_column("ts", ts)
        out = []
        for t in ts.tolist():
            out.append(self.current)
            self._max_ts = max(self._max_ts, t)
        return np.array(out, dtype=np.int64)

    def end_input(self):
        self._ended = True

    def snapshot(self):
        return {"delay": self._delay, "max_ts": self._max_ts, "ended": self._ended}

    @classmethod
    def restore(cls, snapshot):
        tracker = cls(_checks.snapshot_field(snapshot, "WatermarkTracker", "delay"))
        tracker._max_ts = _checks.integer("max_ts", _checks.snapshot_field(snapshot, "WatermarkTracker", "max_ts"))
        tracker._ended = bool(_checks.snapshot_field(snapshot, "WatermarkTracker", "ended"))
        return tracker

    def __repr__(self):
        return f"WatermarkTracker(delay={self._delay}, max_ts={self._max_ts}, current={self.current})"


def late_mask(watermarks, window_ends, lateness):
    """``watermarks >= window_ends - 1 + lateness`` elementwise, saturating; ``lateness >= 0``."""
    watermarks = _checks.int64_column("watermarks", watermarks)
    window_ends = _checks.int64_column("window_ends", window_ends)
    _checks.same_length(watermarks=watermarks, window_ends=window_ends)
    lateness = _checks.non_negative("lateness", lateness)
    out = []
    for w, end in zip(watermarks.tolist(), window_ends.tolist()):
        out.append(w >= _checks.saturating_add(_checks.saturating_add(end, -1), lateness))
    return np.array(out, dtype=np.bool_)


def combine_watermarks(watermarks, idle):
    """Min over the inputs that are not idle; all idle -> max over all (Flink); none -> INT64_MIN."""
    watermarks = _checks.int64_column("watermarks", watermarks)
    idle = _checks.bool_column("idle", idle)
    _checks.same_length(watermarks=watermarks, idle=idle)
    active = [w for w, is_idle in zip(watermarks.tolist(), idle.tolist()) if not is_idle]
    if active:
        return min(active)
    if len(watermarks):
        return max(watermarks.tolist())
    return INT64_MIN


# ==== end of watermarks ==============================================================================


# ==== key interning ==================================================================================


class KeyInterner:
    """Hashable keys to dense int64 ids ``0, 1, 2, ...`` in order of first appearance.

    Keys are equal as in a Python dict (``1``, ``1.0`` and ``True`` are one key; the first one seen is
    the one stored and returned by `key`). Elements of numpy arrays are interned as Python scalars
    (``.tolist()``). An unhashable key raises ``TypeError`` naming it, and the batch interns nothing.
    """

    def __init__(self):
        self._ids = {}
        self._keys = []

    def intern(self, keys):
        kind, batch = _checks.key_batch(keys)
        if kind == "int64":
            batch = batch.tolist()
        n_before = len(self._keys)
        out = []
        try:
            for i, key in enumerate(batch):
                try:
                    key_id = self._ids.get(key)
                except TypeError as exc:
                    raise _checks.unhashable_key(i, key, exc) from None
                if key_id is None:
                    key_id = len(self._keys)
                    self._ids[key] = key_id
                    self._keys.append(key)
                out.append(key_id)
        except BaseException:
            # all or nothing: forget the keys this failed batch added
            for key in self._keys[n_before:]:
                del self._ids[key]
            del self._keys[n_before:]
            raise
        return np.array(out, dtype=np.int64)

    def key(self, key_id):
        key_id = _checks.integer("key_id", key_id)
        if not 0 <= key_id < len(self._keys):
            raise _checks.key_id_error(key_id, len(self._keys))
        return self._keys[key_id]

    def keys_of(self, key_ids):
        key_ids = _checks.int64_column("key_ids", key_ids)
        out = []
        for key_id in key_ids.tolist():
            if not 0 <= key_id < len(self._keys):
                raise _checks.key_id_error(key_id, len(self._keys))
            out.append(self._keys[key_id])
        return out

    def __len__(self):
        return len(self._keys)

    def snapshot(self):
        return {"keys": list(self._keys)}

    @classmethod
    def restore(cls, snapshot):
        keys = _checks.snapshot_field(snapshot, "KeyInterner", "keys")
        interner = cls()
        if not isinstance(keys, list):
            raise TypeError(f"KeyInterner snapshot 'keys' must be a list, got {type(keys).__name__}")
        interner.intern(keys)
        if len(interner) != len(keys):
            raise ValueError("KeyInterner snapshot holds equal keys twice; it is corrupt")
        return interner

    def __repr__(self):
        return f"KeyInterner({len(self._keys)} keys)"


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


class IntervalJoinBuffers:
    pass


# ==== end of interval join ===========================================================================
