"""Keyed windows: tumbling and sliding over `WindowAggTable`, sessions over `SessionTable`, and the
general ``reduce`` fold over Python values.

Per batch (SEMANTICS.md, "Windows"): assign each record to its windows with the kernels, mark each
(record, window) pair late when the watermark in force before the record is ``>= end - 1 + lateness``,
add the other pairs, then fire and purge with the operator's watermark after the batch. A record added
to no window goes, unchanged and once, to the late output (or is only counted). Results are columns
``key, start, end, <aggregations>`` with event time ``end - 1``; they become dicts only when a
downstream step needs Python records.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np

from engine import kernels
from engine.aggregations import Aggregation
from engine.batch import Batch
from engine.dead_letters import DeadLetter
from engine.errors import IncompatibleCheckpointError
from engine.runtime.extract import Problem, call_per_record, field_values, good_index, numeric_column
from engine.runtime.keys import KeyDomain
from engine.runtime.operators.base import INT64_MAX, Operator, Output, dead_letters_for
from engine.state.codec import frozen
from engine.windows import Session, Sliding, Tumbling

__all__ = ["ReduceWindowOperator", "SessionWindowOperator", "WindowAggregateOperator", "make_window_operator"]

_EXACT_INT = float(2**53)


def _saturating_ends(starts: np.ndarray, size: int) -> np.ndarray:
    """``starts + size`` clamped at INT64_MAX (the kernels' saturating time arithmetic)."""
    if not len(starts) or int(starts.max()) <= INT64_MAX - size:
        return starts + np.int64(size)
    ends = starts + np.int64(size)
    ends[starts > INT64_MAX - size] = INT64_MAX
    return ends


def _not_behind(wm: np.ndarray, watermark: int) -> np.ndarray:
    """Per-record watermarks, raised to the operator's watermark where behind it (never backwards)."""
    if not len(wm) or int(wm.min()) >= watermark:
        return wm
    return np.maximum(wm, np.int64(watermark))


class _Values:
    """Reads the aggregated fields of a batch as one float64 matrix ``(n, n_values)``."""

    def __init__(self, step: str, refs: list[str | Callable[[Any], Any]]) -> None:
        self.step = step
        self.refs = refs
        # A count-only table has no value columns: its windows are the 24-byte head alone (the table's
        # entries, scans and fired results are half the size of one with a dummy column). A table
        # restored from a checkpoint written with a dummy column keeps it (see `match`).
        self.width = len(refs)
        self.integer = [True] * len(refs)  # every value of the field seen so far was an int

    def match(self, n_values: int) -> None:
        """Read as many value columns as a restored table has (count-only checkpoints of earlier
        versions have one zero column)."""
        if n_values != len(self.refs) and not (n_values == 1 and not self.refs):
            raise IncompatibleCheckpointError(
                f"step {self.step!r}: the checkpoint's window table has {n_values} value columns, "
                f"the step aggregates {len(self.refs)} fields"
            )
        self.width = n_values

    def read(self, batch: Batch) -> tuple[np.ndarray, list[Problem]]:
        n = len(batch)
        if len(self.refs) == 1 and isinstance(self.refs[0], str):
            column = batch.columns.get(self.refs[0])
            if column is not None and column.dtype == np.float64 and column.ndim == 1:
                self.integer[0] = False
                return column.reshape(-1, 1), []  # the common columnar case: a view, no copy
        values = np.zeros((n, self.width), dtype=np.float64)
        problems: list[Problem] = []
        bad = np.zeros(n, dtype=bool)
        for j, ref in enumerate(self.refs):
            if isinstance(ref, str) and ref in batch.columns:
                raw: Any = batch.columns[ref]
                present = None
                missing: list[Problem] = []
            elif isinstance(ref, str):
                raw, missing = field_values(batch.records, ref)
                present = good_index(n, missing) if missing else None
            else:
                what = f"aggregation function {getattr(ref, '__qualname__', 'callable')}"
                raw, missing = call_per_record(ref, batch.records, what, pure=True)
                present = good_index(n, missing) if missing else None
            column, is_int, wrong = numeric_column(raw, ref if isinstance(ref, str) else "aggregated value")
            self.integer[j] = self.integer[j] and is_int
            positions = present if present is not None else np.arange(n)
            for p in wrong:
                p.index = int(positions[p.index])
            good = positions
            if wrong:
                good = np.setdiff1d(positions, np.array([p.index for p in wrong], dtype=np.int64), assume_unique=True)
            if len(good) == n:
                values[:, j] = column
            else:
                values[good, j] = column
            for p in missing + wrong:
                if not bad[p.index]:
                    bad[p.index] = True
                    problems.append(p)
        problems.sort(key=lambda p: p.index)
        return values, problems


def _result_columns(
    domain: KeyDomain, aggregations: dict[str, Aggregation], refs: list, integer: list[bool],
    key_ids: np.ndarray, starts: np.ndarray, ends: np.ndarray, counts: np.ndarray,
    sums: np.ndarray, mins: np.ndarray, maxs: np.ndarray,
) -> dict[str, np.ndarray]:
    columns = {"key": domain.keys_of(key_ids), "start": starts, "end": ends}
    for name, aggregation in aggregations.items():
        if aggregation.kind == "count":
            columns[name] = counts
            continue
        j = refs.index(aggregation.field)
        if aggregation.kind == "mean":
            columns[name] = sums[:, j] / counts
            continue
        column = {"sum": sums, "min": mins, "max": maxs}[aggregation.kind][:, j]
        if integer[j] and len(column) and bool((np.abs(column) < _EXACT_INT).all()):
            column = column.astype(np.int64)
        columns[name] = np.ascontiguousarray(column)
    return columns


def _result_batch(columns: dict[str, np.ndarray], ends: np.ndarray, before: int, source: Batch) -> Batch:
    # A window result's event time is its max timestamp (end - 1), as in Flink; downstream it is on time
    # unless it is an update within the allowed lateness.
    ts = ends - 1
    wm = np.full(len(ts), before, dtype=np.int64)
    return Batch(ts, wm, columns=columns, origin=source.origin, partition=source.partition,
                 watermark=source.watermark, idle=source.idle)


def _value_fields(aggregations: dict[str, Aggregation]) -> list[str]:
    """The numeric fields the aggregations read, each once, in order (the value columns of a table)."""
    fields: list[str] = []
    for aggregation in aggregations.values():
        if aggregation.field is not None and aggregation.field not in fields:
            fields.append(aggregation.field)
    return fields


def _numeric_values(step: str, reader: "_Values", batch: Batch) -> tuple[Batch, np.ndarray, list[DeadLetter]]:
    """The aggregated fields as a float matrix; records whose values cannot be read become dead letters
    and leave the batch."""
    values, problems = reader.read(batch)
    if not problems:
        return batch, values, []
    errors = dead_letters_for(step, batch.records, problems)
    keep = good_index(len(batch), problems)
    return batch.take(keep), values[keep], errors


class WindowAggregateOperator(Operator):
    """Tumbling or sliding windows aggregated in a `kernels.WindowAggTable`."""

    def __init__(self, step: str, spec: Tumbling | Sliding, lateness: int,
                 aggregations: dict[str, Aggregation], domain: KeyDomain) -> None:
        super().__init__(step)
        self.spec = spec
        self.lateness = lateness
        self.aggregations = aggregations
        self.values = _Values(step, _value_fields(aggregations))
        self.domain = domain
        self.table = kernels.WindowAggTable(spec.size, lateness, self.values.width)
        self.watermark = kernels.INT64_MIN
        # The table keeps sums, mins and maxs of every value column; those no aggregation reads are left
        # out of checkpoints (a count-only job writes neither: 24 of 50 bytes per window).
        kinds = {aggregation.kind for aggregation in aggregations.values()}
        self._unread = tuple(name for name, readers in (("sums", {"sum", "mean"}), ("mins", {"min"}), ("maxs", {"max"}))
                             if not kinds & readers)
        domain.holders.append(self)

    def process(self, batch: Batch, input_index: int) -> Output:
        errors: list[DeadLetter] = []
        late_rows = None
        late_count = 0
        if len(batch):
            batch, values, errors = _numeric_values(self.step, self.values, batch)
            late_rows = self._add(batch, values)
            late_count = int(late_rows.sum())
        before = self.watermark
        self.watermark = max(self.watermark, batch.watermark)
        fired = self.table.fire(self.watermark)
        self.table.purge(self.watermark)
        columns = _result_columns(self.domain, self.aggregations, self.values.refs, self.values.integer, *fired)
        main = _result_batch(columns, fired.ends, before, batch)
        late = batch.take(late_rows) if late_count else None
        return Output(main, late=late, errors=errors, late_count=late_count)

    def _add(self, batch: Batch, values: np.ndarray) -> np.ndarray:
        """Add the batch; return the mask of records added to no window."""
        ts, key_ids = batch.ts, batch.key_ids
        wm = _not_behind(batch.wm, self.watermark)  # watermarks never go backwards
        spec = self.spec
        if isinstance(spec, Tumbling):
            starts = kernels.tumbling_starts(ts, spec.size, spec.offset)
            late = kernels.late_mask(wm, _saturating_ends(starts, spec.size), self.lateness)
            if late.any():
                on_time = ~late
                self.table.add(key_ids[on_time], starts[on_time], values[on_time])
            else:
                self.table.add(key_ids, starts, values)
            return late
        rows, starts = kernels.sliding_windows(ts, spec.size, spec.slide, spec.offset)
        late = kernels.late_mask(wm[rows], _saturating_ends(starts, spec.size), self.lateness)
        on_time = ~late
        added_rows = rows[on_time]
        self.table.add(key_ids[added_rows], starts[on_time], values[added_rows])
        return np.bincount(added_rows, minlength=len(ts)) == 0

    def state_size(self) -> int:
        return len(self.table)

    # The table's own order (no sort) is enough for key ids, compaction and checkpoints: restore accepts
    # windows in any order, and the sort was most of a checkpoint's time with a million live windows.
    def live_key_ids(self) -> np.ndarray:
        return self.table.snapshot_unordered()["key_ids"]

    def remap_key_ids(self, mapping: np.ndarray) -> None:
        state = self.table.snapshot_unordered()
        state["key_ids"] = mapping[state["key_ids"]]
        self.table = kernels.WindowAggTable.restore(state)

    def snapshot(self) -> dict[str, Any]:
        table = frozen(self.table.snapshot_unordered(**{name: False for name in self._unread}))
        return {"table": table, "watermark": self.watermark, "integer": list(self.values.integer)}

    def restore(self, snapshot: dict[str, Any]) -> None:
        table = dict(snapshot["table"])
        unread = [name for name in ("sums", "mins", "maxs") if table.get(name, 0) is None]
        if unread:
            # Accumulators no aggregation of this (unchanged) graph reads: unknown, so NaN.
            shape = (len(table["key_ids"]), int(table["n_values"]))
            for name in unread:
                table[name] = np.full(shape, np.nan)
        self.table = kernels.WindowAggTable.restore(table)
        self.values.match(self.table.n_values)
        self.watermark = snapshot["watermark"]
        self.values.integer = list(snapshot["integer"])


class SessionWindowOperator(Operator):
    """Session windows aggregated in a `kernels.SessionTable` (merging sessions that overlap or touch).

    A session emitted earlier and later merged into a bigger one is not retracted (as in Flink); the
    merged session is emitted with the combined result. ``superseded`` counts such sessions.
    """

    def __init__(self, step: str, spec: Session, lateness: int,
                 aggregations: dict[str, Aggregation], domain: KeyDomain) -> None:
        super().__init__(step)
        self.spec = spec
        self.lateness = lateness
        self.aggregations = aggregations
        self.values = _Values(step, _value_fields(aggregations))
        self.domain = domain
        self.table = kernels.SessionTable(spec.gap, lateness, self.values.width)
        self.watermark = kernels.INT64_MIN
        self.superseded = 0
        domain.holders.append(self)

    def process(self, batch: Batch, input_index: int) -> Output:
        errors: list[DeadLetter] = []
        late_rows = None
        late_count = 0
        if len(batch):
            batch, values, errors = _numeric_values(self.step, self.values, batch)
            wm = _not_behind(batch.wm, self.watermark)
            late_rows = self.table.add(batch.key_ids, batch.ts, values, wm)
            late_count = int(late_rows.sum())
        before = self.watermark
        self.watermark = max(self.watermark, batch.watermark)
        fired = self.table.fire(self.watermark)
        self.superseded += len(fired.merged_key_ids)
        self.table.purge(self.watermark)
        columns = _result_columns(self.domain, self.aggregations, self.values.refs, self.values.integer,
                                  *fired[:7])
        main = _result_batch(columns, fired.ends, before, batch)
        late = batch.take(late_rows) if late_count else None
        return Output(main, late=late, errors=errors, late_count=late_count)

    def state_size(self) -> int:
        return len(self.table)

    def snapshot(self) -> dict[str, Any]:
        return {"table": frozen(self.table.snapshot()), "watermark": self.watermark,
                "integer": list(self.values.integer), "superseded": self.superseded}

    def extra_metrics(self) -> dict[str, Any]:
        return {"superseded_sessions": self.superseded}

    def live_key_ids(self) -> np.ndarray:
        state = self.table.snapshot()
        return np.concatenate([state["key_ids"], state["merged_key_ids"]])

    def remap_key_ids(self, mapping: np.ndarray) -> None:
        state = self.table.snapshot()
        state["key_ids"] = mapping[state["key_ids"]]
        state["merged_key_ids"] = mapping[state["merged_key_ids"]]
        self.table = kernels.SessionTable.restore(state)

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.superseded = snapshot.get("superseded", 0)
        self.table = kernels.SessionTable.restore(snapshot["table"])
        self.values.match(self.table.n_values)
        self.watermark = snapshot["watermark"]
        self.values.integer = list(snapshot["integer"])


class ReduceWindowOperator(Operator):
    """``reduce(fn, initial)``: folds Python records per window, in arrival order.

    Window assignment and late marking use the same kernels as `WindowAggregateOperator`; the state is a
    dict of accumulators (tumbling/sliding) or of per-session record lists (sessions, because two
    accumulators cannot be merged: a merged session is re-folded from its records in arrival order).
    A record whose fold raises goes to the dead letters; windows it was already folded into keep it.
    """

    def __init__(self, step: str, spec: Any, lateness: int, fn: Callable[[Any, Any], Any], initial: Any,
                 field: str, domain: KeyDomain) -> None:
        super().__init__(step)
        self.spec = spec
        self.lateness = lateness
        self.fn = fn
        self.initial = initial
        self.field = field
        self.domain = domain
        self.what = f"reduce function {getattr(fn, '__qualname__', 'callable')}"
        self.watermark = kernels.INT64_MIN
        # (key_id, start) -> [end, accumulator or records, dirty]
        self.windows: dict[tuple[int, int], list] = {}
        self.sessions: dict[int, list[list]] = {}  # key_id -> [[start, end, [(seq, record)], dirty], ...]
        self.seq = 0
        domain.holders.append(self)

    def live_key_ids(self) -> np.ndarray:
        ids = {k for k, _ in self.windows}
        ids.update(k for k, sessions in self.sessions.items() if sessions)
        return np.array(sorted(ids), dtype=np.int64)

    def remap_key_ids(self, mapping: np.ndarray) -> None:
        self.windows = {(int(mapping[k]), s): slot for (k, s), slot in self.windows.items()}
        self.sessions = {int(mapping[k]): sessions for k, sessions in self.sessions.items() if sessions}

    def _new_acc(self) -> Any:
        return copy.deepcopy(self.initial)

    def process(self, batch: Batch, input_index: int) -> Output:
        errors: list[DeadLetter] = []
        late_count = 0
        late = None
        if len(batch):
            wm = _not_behind(batch.wm, self.watermark)
            if isinstance(self.spec, Session):
                late_rows, errors = self._add_sessions(batch, wm)
            else:
                late_rows, errors = self._add_windows(batch, wm)
            late_count = int(late_rows.sum())
            late = batch.take(late_rows) if late_count else None
        before = self.watermark
        self.watermark = max(self.watermark, batch.watermark)
        main, fold_errors = self._fire_and_purge(before, batch)
        return Output(main, late=late, errors=errors + fold_errors, late_count=late_count)

    def _add_windows(self, batch: Batch, wm: np.ndarray) -> tuple[np.ndarray, list[DeadLetter]]:
        spec = self.spec
        n = len(batch)
        if isinstance(spec, Tumbling):
            starts = kernels.tumbling_starts(batch.ts, spec.size, spec.offset)
            rows = np.arange(n, dtype=np.int64)
        else:
            rows, starts = kernels.sliding_windows(batch.ts, spec.size, spec.slide, spec.offset)
        ends = _saturating_ends(starts, spec.size)
        late = kernels.late_mask(wm[rows], ends, self.lateness)
        records = batch.records
        key_ids = batch.key_ids.tolist()
        failed: dict[int, DeadLetter] = {}
        added = np.zeros(n, dtype=bool)
        fn = self.fn
        windows = self.windows
        for row, start, end, is_late in zip(rows.tolist(), starts.tolist(), ends.tolist(), late.tolist()):
            if is_late or row in failed:
                continue
            slot = windows.get((key_ids[row], start))
            acc = self._new_acc() if slot is None else slot[1]
            try:
                acc = fn(acc, records[row])
            except Exception as exc:  # routed to dead letters, not lost
                failed[row] = DeadLetter(self.step, f"{self.what} raised {type(exc).__name__}: {exc}", records[row])
                continue
            if slot is None:
                windows[(key_ids[row], start)] = [end, acc, True]
            else:
                slot[1] = acc
                slot[2] = True
            added[row] = True
        late_rows = ~added
        if failed:
            late_rows[list(failed)] = False
        return late_rows, list(failed.values())

    def _add_sessions(self, batch: Batch, wm: np.ndarray) -> tuple[np.ndarray, list[DeadLetter]]:
        gap = self.spec.gap
        lateness = self.lateness
        late_rows = np.zeros(len(batch), dtype=bool)
        records = batch.records
        for i, (key_id, ts, w) in enumerate(zip(batch.key_ids.tolist(), batch.ts.tolist(), wm.tolist())):
            sessions = self.sessions.setdefault(key_id, [])
            start, end = ts, min(ts + gap, INT64_MAX)
            # Only sessions still live for this record's own watermark can merge (a session the
            # watermark has passed is final even if the purge after this batch has not run yet).
            touching = [s for s in sessions if s[0] <= end and start <= s[1]
                        and w < min(s[1] - 1 + lateness, INT64_MAX)]
            if touching:
                start = min([start] + [s[0] for s in touching])
                end = max([end] + [s[1] for s in touching])
            if w >= min(end - 1 + lateness, INT64_MAX):
                late_rows[i] = True
                continue
            members = [(self.seq, records[i])]
            self.seq += 1
            for s in touching:
                sessions.remove(s)
                members.extend(s[2])
            sessions.append([start, end, members, True])
        return late_rows, []

    def _fire_and_purge(self, before: int, source: Batch) -> tuple[Batch, list[DeadLetter]]:
        W = self.watermark
        fired: list[tuple[int, int, int, Any]] = []
        errors: list[DeadLetter] = []
        if isinstance(self.spec, Session):
            for key_id, sessions in self.sessions.items():
                for s in sessions:
                    if s[3] and s[1] - 1 <= W:
                        s[3] = False
                        s[2].sort(key=lambda m: m[0])
                        acc = self._new_acc()
                        kept = []
                        for member in s[2]:
                            try:
                                acc = self.fn(acc, member[1])
                                kept.append(member)
                            except Exception as exc:  # routed once, then dropped from the session
                                errors.append(DeadLetter(
                                    self.step, f"{self.what} raised {type(exc).__name__}: {exc}", member[1]))
                        s[2] = kept
                        fired.append((s[1], s[0], key_id, acc))
                sessions[:] = [s for s in sessions if not min(s[1] - 1 + self.lateness, INT64_MAX) <= W]
        else:
            dead = []
            for (key_id, start), slot in self.windows.items():
                end = slot[0]
                if slot[2] and end - 1 <= W:
                    slot[2] = False
                    fired.append((end, start, key_id, slot[1]))
                if min(end - 1 + self.lateness, INT64_MAX) <= W:
                    dead.append((key_id, start))
            for k in dead:
                del self.windows[k]
        fired.sort(key=lambda f: f[:3])
        ends = np.array([f[0] for f in fired], dtype=np.int64)
        accs = np.empty(len(fired), dtype=object)
        for i, f in enumerate(fired):
            accs[i] = f[3]
        columns = {
            "key": self.domain.keys_of(np.array([f[2] for f in fired], dtype=np.int64)),
            "start": np.array([f[1] for f in fired], dtype=np.int64),
            "end": ends,
            self.field: accs,
        }
        return _result_batch(columns, ends, before, source), errors

    def state_size(self) -> int:
        return len(self.windows) + sum(len(s) for s in self.sessions.values())

    def snapshot(self) -> dict[str, Any]:
        # Accumulators and records are user values; a checkpointing run serialises them with its codec.
        return {
            "watermark": self.watermark,
            "seq": self.seq,
            "windows": [[k, s, slot[0], slot[1], slot[2]] for (k, s), slot in self.windows.items()],
            "sessions": [[k, s[0], s[1], [list(m) for m in s[2]], s[3]] for k, ss in self.sessions.items() for s in ss],
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.watermark = snapshot["watermark"]
        self.seq = snapshot["seq"]
        self.windows = {(k, s): [end, acc, dirty] for k, s, end, acc, dirty in snapshot["windows"]}
        self.sessions = {}
        for k, start, end, members, dirty in snapshot["sessions"]:
            self.sessions.setdefault(k, []).append([start, end, [tuple(m) for m in members], dirty])


def make_window_operator(step: str, params: Any, domain: KeyDomain) -> Operator:
    spec = params["spec"]
    lateness = params["allowed_lateness"]
    if params["reducer"] is not None:
        fn, initial, field = params["reducer"]
        return ReduceWindowOperator(step, spec, lateness, fn, initial, field, domain)
    if isinstance(spec, Session):
        return SessionWindowOperator(step, spec, lateness, params["aggregations"], domain)
    return WindowAggregateOperator(step, spec, lateness, params["aggregations"], domain)
