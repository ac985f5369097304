"""Slow, obviously-correct pure-Python twin of every compiled kernel in `engine/_core.pyx`.

Same API, same errors (via `engine._checks`), same snapshots as `_core.pyi` describes. It exists for
the differential tests and for ``ENGINE_NO_EXTENSIONS=1``; the runtime reaches it only through
`engine.kernels`. Clarity beats speed here: plain loops and dicts, one record at a time.
"""

from __future__ import annotations

import operator

import numpy as np

from engine import _checks
from engine._kernel_types import (
    FLAT_KINDS,
    FLAT_OK,
    FLAT_SECOND_TYPE,
    FLAT_SLOW,
    INT64_MAX,
    INT64_MIN,
    LEFT,
    RIGHT,
    FiredSessions,
    FiredWindows,
    FlatField,
    JoinPairs,
)

__all__ = [
    "FLAT_KINDS",
    "FLAT_OK",
    "FLAT_SECOND_TYPE",
    "FLAT_SLOW",
    "FlatField",
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
    "crc32c",
    "dfa_reject_lines",
    "gather_attributes",
    "json_object_rows",
    "kafka_json_record_batches",
    "kafka_key_partitions",
    "kafka_record_batches",
    "late_mask",
    "scan_flat_json",
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

    This twin is one plain dict, the oracle of the compiled interner (which keeps every key equal to
    an int64 value in an int64 table by value). They differ only where a dict compares two keys of equal
    hash and that ``==`` raises (``Decimal(3) == np.int32(3)``): the dict fails, the compiled kernel
    never compares them.
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
        # A list is the canonical form; an int64 array of all-int keys restores without Python objects.
        if not isinstance(keys, list) and not (isinstance(keys, np.ndarray) and keys.dtype == np.int64 and keys.ndim == 1):
            raise TypeError(f"KeyInterner snapshot 'keys' must be a list or an int64 array, got {type(keys).__name__}")
        interner.intern(keys)
        if len(interner) != len(keys):
            raise ValueError("KeyInterner snapshot holds equal keys twice; it is corrupt")
        return interner

    def __repr__(self):
        return f"KeyInterner({len(self._keys)} keys)"


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
        return self._export(sorted(self._windows.items(), key=lambda kv: (kv[0][1], kv[0][0])))

    def snapshot_unordered(self, sums=True, mins=True, maxs=True):
        """`snapshot`'s state in insertion order (the compiled table's order may differ; any is valid),
        without the accumulators asked to be left out (``None``)."""
        state = self._export(list(self._windows.items()))
        for name, wanted in (("sums", sums), ("mins", mins), ("maxs", maxs)):
            if not wanted:
                state[name] = None
        return state

    def _export(self, items):
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
            if len(table._windows) != i + 1:
                raise ValueError(
                    f"snapshot holds window (start={int(starts[i])}, key_id={int(key_ids[i])}) twice; it is corrupt"
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


# ==== pattern checks over a column ===================================================================


def dfa_reject_lines(buf, table, accepting, start):
    buf, table, accepting, start = _checks.dfa_arguments(buf, table, accepting, start)
    rejected = []
    state = start
    line = 0
    for byte in buf.tolist():
        if byte == 10:
            if not accepting[state]:
                rejected.append(line)
            line += 1
            state = start
        else:
            state = int(table[state * 256 + byte])
    if not accepting[state]:
        rejected.append(line)
    return np.asarray(rejected, dtype=np.int64)


# ==== flat JSON records into columns =================================================================

import re  # noqa: E402  (imported here to keep each kernel's twin within its own section)

_JSON_INT = re.compile(rb"-?(?:0|[1-9][0-9]*)")
_JSON_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_PLAIN_STRING = re.compile(rb'"([\x20\x21\x23-\x5b\x5d-\x7f]*)"')  # ASCII, no quote, backslash or control
_MIN_NORMAL = 2.2250738585072014e-308
_NUMBER_GOES_ON = frozenset(bytes([c]) for c in b".eE0123456789")  # after a number: a longer or malformed one


def _flat_integer(data, i):
    """(value, end) of a JSON integer literal of at most 18 digits at ``i`` not followed by a fraction or an
    exponent, else None."""
    m = _JSON_INT.match(data, i)
    if m is None:
        return None
    digits = m.group().lstrip(b"-")
    end = m.end()
    if len(digits) > 18 or data[end:end + 1] in _NUMBER_GOES_ON:
        return None
    return int(m.group()), end


def _flat_number(data, i):
    """(float value, end) of a JSON number at ``i`` converted as msgspec does, else None (see the kernel)."""
    got = _flat_integer(data, i)
    if got is not None:
        return float(got[0]), got[1]
    m = _JSON_NUMBER.match(data, i)
    if m is None:
        return None
    end = m.end()
    text = m.group()
    if data[end:end + 1] in _NUMBER_GOES_ON:
        return None
    if len(text) > 40 or not any(c in text for c in b".eE"):
        return None  # too long, or an integer literal too long for `_flat_integer`
    mantissa, _, exponent = text.lower().partition(b"e")
    if len(exponent.lstrip(b"+-")) > 4:
        return None
    value = float(text)
    if value in (float("inf"), float("-inf")):
        return None
    if value == 0.0 and mantissa.strip(b"-.0"):
        return None  # underflow
    if value != 0.0 and abs(value) < _MIN_NORMAL:
        return None
    return value, end


def _flat_value(plan, data, i):
    """(python value, end) of one field's value at ``i`` when it is on the fast path, else None."""
    name, kind, lo, hi, mult, flo, fhi, flo_x, fhi_x, has_flo, has_fhi, min_len, max_len, dfa, symbols = plan
    if kind == 6:  # number: an int, or a float when the literal has a fraction or an exponent
        return _flat_integer(data, i) or _flat_number(data, i)
    if kind == 7:  # key: an int or a plain str
        m = _PLAIN_STRING.match(data, i)
        return (m.group(1).decode("ascii"), m.end()) if m is not None else _flat_integer(data, i)
    if kind in (0, 5):  # int, timestamp
        got = _flat_integer(data, i)
        if got is None or not lo <= got[0] <= hi or (mult and got[0] % mult):
            return None
        return got
    if kind == 1:  # float
        got = _flat_number(data, i)
        if got is None:
            return None
        v = got[0]
        if has_flo and (v <= flo if flo_x else v < flo):
            return None
        if has_fhi and (v >= fhi if fhi_x else v > fhi):
            return None
        return got
    if kind == 2:  # bool
        if data.startswith(b"true", i):
            return True, i + 4
        if data.startswith(b"false", i):
            return False, i + 5
        return None
    m = _PLAIN_STRING.match(data, i)
    if m is None:
        return None
    raw = m.group(1)
    if kind == 4:  # enum: the code of the symbol
        return (symbols.index(raw), m.end()) if raw in symbols else None
    if len(raw) < max(min_len, 0) or (max_len >= 0 and len(raw) > max_len):
        return None
    if dfa is not None:
        table, accepting, state = dfa
        for byte in raw:
            state = int(table[state * 256 + byte])
        if not accepting[state]:
            return None
    return raw.decode("ascii"), m.end()


def _flat_skip(data, i, depth=0):
    """The end of an unknown field's value when it is a plain scalar the scanner reads, or an array or
    object of them at most 32 deep (with plain-string keys), else None."""
    if data[i:i + 1] in (b"[", b"{"):
        return _flat_skip_container(data, i, depth)
    m = _PLAIN_STRING.match(data, i)
    if m is not None:
        return m.end()
    for literal in (b"true", b"false", b"null"):
        if data.startswith(literal, i):
            return i + len(literal)
    got = _flat_number(data, i)
    return None if got is None else got[1]


def _flat_skip_container(data, i, depth):
    if depth >= 32:
        return None
    close = b"]" if data[i:i + 1] == b"[" else b"}"

    def ws(i):
        while data[i:i + 1] in (b" ", b"\t", b"\n", b"\r"):
            i += 1
        return i

    i = ws(i + 1)
    if data.startswith(close, i):
        return i + 1
    while True:
        if close == b"}":
            m = _PLAIN_STRING.match(data, i)
            if m is None:
                return None
            i = ws(m.end())
            if not data.startswith(b":", i):
                return None
            i = ws(i + 1)
        end = _flat_skip(data, i, depth + 1)
        if end is None:
            return None
        i = ws(end)
        if data.startswith(close, i):
            return i + 1
        if not data.startswith(b",", i):
            return None
        i = ws(i + 1)


def _flat_record(plans, data, allow_unknown):
    """The record's values by field position when it is on the fast path, else None."""
    def ws(i):
        while i < len(data) and data[i:i + 1] in (b" ", b"\t", b"\n", b"\r"):
            i += 1
        return i

    by_name = {p[0]: k for k, p in enumerate(plans)}
    values = {}
    i = ws(0)
    if not data.startswith(b"{", i):
        return None
    i = ws(i + 1)
    while True:
        m = _PLAIN_STRING.match(data, i)
        if m is None:
            return None
        k = by_name.get(m.group(1))
        if k in values or (k is None and not allow_unknown):
            return None  # a duplicate or an unknown key
        i = ws(m.end())
        if not data.startswith(b":", i):
            return None
        if k is None:
            end = _flat_skip(data, ws(i + 1))
            if end is None:
                return None
        else:
            got = _flat_value(plans[k], data, ws(i + 1))
            if got is None:
                return None
            values[k], end = got
        i = ws(end)
        if data.startswith(b",", i):
            i = ws(i + 1)
            continue
        if not data.startswith(b"}", i):
            return None
        if ws(i + 1) != len(data) or len(values) != len(plans):
            return None
        return values


def gather_attributes(items, int_names, object_names, append_to=None):
    items, int_names, object_names, append_to = _checks.gather_arguments(items, int_names, object_names, append_to)
    ints = [np.empty(len(items), dtype=np.int64) for _ in int_names]
    objects = [[] for _ in object_names]
    for i, item in enumerate(items):  # item by item, so the first bad attribute raises, as compiled
        for name, column in zip(int_names, ints):
            value = getattr(item, name)
            if isinstance(value, bool):
                raise TypeError(f"item {i}: {name} must be an int, got {value!r}")
            value = operator.index(value)
            if not INT64_MIN <= value <= INT64_MAX:
                raise OverflowError(f"item {i}: {name} = {value} is out of int64 range")
            column[i] = value
        for name, column in zip(object_names, objects):
            column.append(getattr(item, name))
    if append_to is None:
        return (*ints, *objects)
    for target, column in zip(append_to, objects):  # only once every item is read: all or nothing
        target.extend(column)
    return tuple(ints)


def scan_flat_json(records, fields, columns, status, allow_unknown=False):
    records, plans, columns, status = _checks.flat_json_arguments(records, fields, columns, status)
    allow_unknown = _checks.flag("allow_unknown", allow_unknown)
    accepted = 0
    for r, rec in enumerate(records):
        values = _flat_record(plans, rec, allow_unknown) if type(rec) is bytes else None
        if values is None:
            status[r] = 1
            continue
        status[r] = 0
        for k, value in values.items():
            kind = plans[k][1]
            if kind == 6:  # number: (int or FLAT_SECOND_TYPE, float64)
                columns[k][0][accepted] = value if type(value) is int else FLAT_SECOND_TYPE
                columns[k][1][accepted] = float(value)
            elif kind == 7:  # key: (int or FLAT_SECOND_TYPE, str or None)
                columns[k][0][accepted] = value if type(value) is int else FLAT_SECOND_TYPE
                columns[k][1][accepted] = value if type(value) is str else None
            else:
                columns[k][accepted] = value  # the k-th accepted record fills row k
        accepted += 1
    return accepted


# ---- JSON rows ----------------------------------------------------------------------------------------

def _json_row_value_supported(value) -> bool:
    if value is None or type(value) in (bool, float, str):
        return True
    return type(value) is int and INT64_MIN <= value <= INT64_MAX


def json_object_rows(keys, columns):
    import msgspec

    keys, arrays, _, n = _checks.json_rows_arguments(keys, columns)
    lists = [arr.tolist() for arr in arrays]
    rows = []
    for i in range(n):
        parts = []
        for key, values in zip(keys, lists):
            value = values[i]
            if not _json_row_value_supported(value):
                return None
            parts.append(key + b":" + msgspec.json.encode(value))
        rows.append(b"{" + b",".join(parts) + b"}")
    offsets = np.zeros(n + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(row) for row in rows], dtype=np.int64)
    return b"".join(rows), offsets


# ---- Kafka record framing -------------------------------------------------------------------------------

_KAFKA_BATCH_HEADER = 61


def _zigzag_varint(value: int) -> bytes:
    z = (value << 1) ^ (value >> 63)
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def kafka_record_batches(values, offsets, timestamps, limit, rows=None, keys=None, key_offsets=None):
    buf, off, ts, limit, rows, keys, key_offsets = _checks.kafka_records_arguments(
        values, offsets, timestamps, limit, rows, keys, key_offsets)
    data = buf.tobytes()
    key_data = None if keys is None else keys.tobytes()
    batches, bounds = [], [0]
    first = 0
    while first < len(rows):
        records, size, j = [], _KAFKA_BATCH_HEADER, first
        first_ts = int(ts[rows[first]])
        while j < len(rows):
            r = int(rows[j])
            value = data[off[r]:off[r + 1]]
            if key_data is None:
                key = _zigzag_varint(-1)
            else:
                key = _zigzag_varint(int(key_offsets[r + 1] - key_offsets[r])) + key_data[key_offsets[r]:key_offsets[r + 1]]
            body = (b"\x00" + _zigzag_varint(int(ts[r]) - first_ts) + _zigzag_varint(j - first) + key
                    + _zigzag_varint(len(value)) + value + _zigzag_varint(0))
            record = _zigzag_varint(len(body)) + body
            if size + len(record) > limit and j > first:
                break
            size += len(record)
            records.append(record)
            j += 1
        batches.append(bytearray(_KAFKA_BATCH_HEADER) + b"".join(records))
        bounds.append(j)
        first = j
    return batches, np.array(bounds, dtype=np.int64)


def kafka_json_record_batches(keys, columns, timestamps, limit, rows=None, msg_keys=None, key_offsets=None):
    """The two kernels it fuses, composed: the JSON of the rows of ``rows`` (in that order), framed."""
    keys, arrays, _, ts, limit, rows, msg_keys, key_offsets = _checks.kafka_json_records_arguments(
        keys, columns, timestamps, limit, rows, msg_keys, key_offsets)
    encoded = json_object_rows(keys, [arr[rows] for arr in arrays])
    if encoded is None:
        return None
    picked_keys = picked_key_offsets = None
    if msg_keys is not None:
        data = msg_keys.tobytes()
        picked = [data[key_offsets[r]:key_offsets[r + 1]] for r in rows.tolist()]
        picked_keys = b"".join(picked)
        picked_key_offsets = np.zeros(len(picked) + 1, dtype=np.int64)
        picked_key_offsets[1:] = np.cumsum([len(key) for key in picked], dtype=np.int64)
    row_ts = ts[rows]
    batches, bounds = kafka_record_batches(*encoded, row_ts, limit, None, picked_keys, picked_key_offsets)
    firsts = [int(row_ts[bounds[b]]) for b in range(len(batches))]
    maxima = [int(row_ts[bounds[b]:bounds[b + 1]].max()) for b in range(len(batches))]
    return batches, bounds, np.array(firsts, dtype=np.int64), np.array(maxima, dtype=np.int64)


def _murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's ``Utils.murmur2``), in 32-bit unsigned arithmetic."""
    mask, m = 0xFFFFFFFF, 0x5BD1E995
    h = (0x9747B28C ^ len(data)) & mask
    tail = len(data) & ~3
    for i in range(0, tail, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    rest = data[tail:]
    if len(rest) >= 3:
        h ^= rest[2] << 16
    if len(rest) >= 2:
        h ^= rest[1] << 8
    if len(rest) >= 1:
        h = ((h ^ rest[0]) * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h


def kafka_key_partitions(keys, key_offsets, n_partitions):
    keys, key_offsets, n_partitions = _checks.kafka_key_partitions_arguments(keys, key_offsets, n_partitions)
    data = keys.tobytes()
    return np.array([(_murmur2(data[key_offsets[i]:key_offsets[i + 1]]) & 0x7FFFFFFF) % n_partitions
                     for i in range(len(key_offsets) - 1)], dtype=np.int64)


# ---- CRC-32C ---------------------------------------------------------------------------------------------

_CRC32C_POLY = 0x82F63B78  # Castagnoli, bit-reflected


def _crc32c_byte(value: int) -> int:
    """The register ``value`` (one byte) shifted out bit by bit, the polynomial XORed in on each 1."""
    for _ in range(8):
        value = (value >> 1) ^ _CRC32C_POLY if value & 1 else value >> 1
    return value


_CRC32C_TABLE = [_crc32c_byte(b) for b in range(256)]


def crc32c(data, crc=0):
    view, crc = _checks.crc32c_arguments(data, crc)
    with view:
        register = crc ^ 0xFFFFFFFF
        for byte in view.tobytes():
            register = (register >> 8) ^ _CRC32C_TABLE[(register ^ byte) & 0xFF]
    return register ^ 0xFFFFFFFF
