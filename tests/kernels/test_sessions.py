"""Session windows (`SessionTable`): compiled kernel vs the pure-Python twin, and the semantics by hand.

SEMANTICS.md, "Windows (keyed)": a record opens ``[ts, ts + gap)``; sessions of a key that overlap or
touch merge; a record is late when ``W >= merged_end - 1 + lateness``; a session fires at
``W >= end - 1`` and is purged at ``W >= end - 1 + lateness``.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import _core, _reference

IMPLS = [_core, _reference]
IMPL_IDS = ["compiled", "twin"]
MIN = _core.INT64_MIN
MAX = _core.INT64_MAX
NAN = float("nan")


# --- helpers ---------------------------------------------------------------------------------------


def batch(records, n_values=1):
    """``[(key, ts, value-or-values, wm_before), ...]`` -> the four arrays of `SessionTable.add`."""
    keys = np.array([r[0] for r in records], dtype=np.int64)
    ts = np.array([r[1] for r in records], dtype=np.int64)
    rows = [list(r[2]) if isinstance(r[2], (list, tuple)) else [r[2]] for r in records]
    values = np.array(rows, dtype=np.float64).reshape(len(records), n_values)
    wm = np.array([r[3] for r in records], dtype=np.int64)
    return keys, ts, values, wm


def fired_rows(fired):
    """Emitted sessions as ``(key, start, end, count, sum, min, max)`` tuples (first value column)."""
    return [
        (int(fired.key_ids[j]), int(fired.starts[j]), int(fired.ends[j]), int(fired.counts[j]),
         float(fired.sums[j, 0]), float(fired.mins[j, 0]), float(fired.maxs[j, 0]))
        for j in range(len(fired.key_ids))
    ]


def merged_rows(fired):
    return list(zip(fired.merged_key_ids.tolist(), fired.merged_starts.tolist(), fired.merged_ends.tolist()))


def sessions_of(table):
    snap = table.snapshot()
    return list(zip(snap["key_ids"].tolist(), snap["starts"].tolist(), snap["ends"].tolist(), snap["counts"].tolist()))


def assert_fired_equal(a, b):
    assert type(a).__name__ == type(b).__name__ == "FiredSessions"
    for name in a._fields:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, (name, x.dtype, y.dtype, x.shape, y.shape)
        np.testing.assert_array_equal(x, y, err_msg=name)


def assert_snapshots_equal(a, b):
    assert list(a) == list(b)
    for name in a:
        x, y = a[name], b[name]
        if isinstance(x, np.ndarray):
            assert isinstance(y, np.ndarray) and x.dtype == y.dtype and x.shape == y.shape, name
            np.testing.assert_array_equal(x, y, err_msg=name)
        else:
            assert type(x) is type(y) and x == y, (name, x, y)


def canon(row):
    return tuple("nan" if math.isnan(v) else v for v in row)


def final_results(fires):
    """The last emission of every session, minus sessions a later fire reported as merged away.

    Emissions may be coalesced differently when fire runs at other points, but this view of the output
    (what an upserting sink would hold) must not depend on batch boundaries.
    """
    last = {}
    for fired in fires:
        for key in merged_rows(fired):
            assert key in last, f"merged {key} was never emitted"
            del last[key]
        for j in range(len(fired.key_ids)):
            key = (int(fired.key_ids[j]), int(fired.starts[j]), int(fired.ends[j]))
            last[key] = (int(fired.counts[j]), canon(fired.sums[j]), canon(fired.mins[j]), canon(fired.maxs[j]))
    return last


# --- random workloads ------------------------------------------------------------------------------


def watermarks_before(ts, delay):
    """BoundedOutOfOrderness(delay) under the per-record rule: W_i from records 0..i-1 only."""
    wm = []
    max_ts = MIN
    for t in ts:
        wm.append(MIN if max_ts == MIN else max(MIN, max_ts - delay - 1))
        max_ts = max(max_ts, t)
    after = MIN if max_ts == MIN else max(MIN, max_ts - delay - 1)
    return wm, after


VALUES = st.sampled_from([0.0, 1.0, -2.5, 3.25, 7.0, NAN, 1e300, -1e300, -0.0])


@st.composite
def workloads(draw, merge_heavy=False):
    """Random records of a few keys with running watermarks, and where to cut them into batches.

    ``merge_heavy`` draws few keys, allowed lateness and much disorder, so sessions are often emitted
    and then grown or merged by a later record (the ``merged_*`` reports).
    """
    gap = draw(st.sampled_from([1, 2, 5, 10, 37]))
    lateness = draw(st.sampled_from([0, 0, 1, 7, 25, MAX // 2, MAX]))
    if merge_heavy:
        gap = draw(st.sampled_from([3, 5, 10]))
        lateness = draw(st.sampled_from([10, 30, 100]))
    n_values = draw(st.integers(0, 2))
    region = draw(st.sampled_from(["zero", "negative", "low", "high"]))
    span = draw(st.sampled_from([40, 60] if merge_heavy else [20, 80, 300]))
    base = {"zero": 0, "negative": -150, "low": MIN, "high": MAX - gap - span}[region]
    n = draw(st.integers(0, 50))
    keys = draw(st.lists(st.sampled_from([0, 1, 2, 3, -7, 2**62]), min_size=n, max_size=n))
    if merge_heavy or draw(st.booleans()):
        keys = [k % 2 for k in keys]  # few keys: many merges
    offsets = draw(st.lists(st.integers(0, span), min_size=n, max_size=n))
    ts = [base + o for o in offsets]
    rows = draw(st.lists(st.lists(VALUES, min_size=n_values, max_size=n_values), min_size=n, max_size=n))
    delay = draw(st.sampled_from([15, 40] if merge_heavy else [0, 3, 15, 60]))
    wm, final_wm = watermarks_before(ts, delay)
    cuts = sorted(set(draw(st.lists(st.integers(0, n), max_size=15 if merge_heavy else 5))))
    return gap, lateness, n_values, list(zip(keys, ts, rows, wm)), final_wm, cuts


def split(records, cuts):
    """Batches of ``records`` at ``cuts`` (empty batches included where cuts repeat or touch the ends)."""
    bounds = [0] + list(cuts) + [len(records)]
    return [records[a:b] for a, b in zip(bounds, bounds[1:])]


def after_batch(records, batches, final_wm):
    """The watermark in force after each batch: the next record's ``wm_before`` (per-record rule)."""
    out = []
    seen = 0
    for b in batches:
        seen += len(b)
        out.append(records[seen][3] if seen < len(records) else final_wm)
    return out


def drive(table, records, batches, final_wm, n_values, *, fire_each=True, end=True):
    """Feed the batches; fire and purge after each at the watermark then in force; optionally end."""
    late, fires, purged = [], [], []
    for b, w in zip(batches, after_batch(records, batches, final_wm)):
        late.append(table.add(*batch(b, n_values)))
        if fire_each:
            fires.append(table.fire(w))
            purged.append(table.purge(w))
    if end:
        fires.append(table.fire(MAX))
        purged.append(table.purge(MAX))
    return np.concatenate(late) if late else np.zeros(0, dtype=bool), fires, purged


# --- differential property tests --------------------------------------------------------------------


@settings(max_examples=150, deadline=None, print_blob=True)
@given(st.one_of(workloads(), workloads(merge_heavy=True)))
def test_compiled_equals_twin_step_by_step(work):
    gap, lateness, n_values, records, final_wm, cuts = work
    batches = split(records, cuts)
    compiled = _core.SessionTable(gap, lateness, n_values)
    twin = _reference.SessionTable(gap, lateness, n_values)
    for b, w in zip(batches, after_batch(records, batches, final_wm)):
        args = batch(b, n_values)
        np.testing.assert_array_equal(compiled.add(*args), twin.add(*args))
        assert_snapshots_equal(compiled.snapshot(), twin.snapshot())
        assert_fired_equal(compiled.fire(w), twin.fire(w))
        assert compiled.purge(w) == twin.purge(w)
        assert len(compiled) == len(twin)
        assert_snapshots_equal(compiled.snapshot(), twin.snapshot())
    assert_fired_equal(compiled.fire(MAX), twin.fire(MAX))
    assert compiled.purge(MAX) == twin.purge(MAX)
    assert len(compiled) == len(twin) == 0


@settings(max_examples=100, deadline=None, print_blob=True)
@given(workloads(), st.data())
def test_compiled_equals_twin_with_arbitrary_watermarks(work, data):
    # wm_before need not be a running watermark here (it is clamped to never go backwards); both
    # implementations must still agree exactly, and fire/purge at arbitrary watermarks too.
    gap, lateness, n_values, records, _, cuts = work
    wm = data.draw(st.lists(st.integers(MIN, MAX), min_size=len(records), max_size=len(records)))
    records = [(k, t, v, w) for (k, t, v, _), w in zip(records, wm)]
    compiled = _core.SessionTable(gap, lateness, n_values)
    twin = _reference.SessionTable(gap, lateness, n_values)
    for b in split(records, cuts):
        args = batch(b, n_values)
        np.testing.assert_array_equal(compiled.add(*args), twin.add(*args))
        w = data.draw(st.sampled_from([MIN, MAX] + [r[1] + d for r in records for d in (-1, 0, 1)]))
        w = max(MIN, min(MAX, w))
        assert_fired_equal(compiled.fire(w), twin.fire(w))
        if data.draw(st.booleans()):
            assert compiled.purge(w) == twin.purge(w)
        assert_snapshots_equal(compiled.snapshot(), twin.snapshot())


@pytest.mark.parametrize("impl", IMPLS, ids=IMPL_IDS)
@settings(max_examples=100, deadline=None, print_blob=True)
@given(work=st.one_of(workloads(), workloads(merge_heavy=True)))
def test_results_do_not_depend_on_batch_boundaries(impl, work):
    gap, lateness, n_values, records, final_wm, cuts = work
    whole = impl.SessionTable(gap, lateness, n_values)
    late_whole, fires_whole, _ = drive(whole, records, [records], final_wm, n_values)
    parts = impl.SessionTable(gap, lateness, n_values)
    late_parts, fires_parts, _ = drive(parts, records, split(records, cuts), final_wm, n_values)
    np.testing.assert_array_equal(late_whole, late_parts)
    assert final_results(fires_whole) == final_results(fires_parts)
    # without intermediate fires the state itself is identical, whatever the split
    a = impl.SessionTable(gap, lateness, n_values)
    drive(a, records, [records], final_wm, n_values, fire_each=False, end=False)
    b = impl.SessionTable(gap, lateness, n_values)
    drive(b, records, split(records, cuts), final_wm, n_values, fire_each=False, end=False)
    assert_snapshots_equal(a.snapshot(), b.snapshot())


@pytest.mark.parametrize("source", IMPLS, ids=IMPL_IDS)
@pytest.mark.parametrize("target", IMPLS, ids=IMPL_IDS)
@settings(max_examples=60, deadline=None, print_blob=True)
@given(work=st.one_of(workloads(), workloads(merge_heavy=True)), at=st.integers(0, 6))
def test_snapshot_restore_continue_equals_uninterrupted(source, target, work, at):
    gap, lateness, n_values, records, final_wm, cuts = work
    batches = split(records, cuts)
    at = min(at, len(batches))
    walls = after_batch(records, batches, final_wm)

    straight = source.SessionTable(gap, lateness, n_values)
    expected = [(straight.add(*batch(b, n_values)), straight.fire(w), straight.purge(w)) for b, w in zip(batches, walls)]
    expected_end = straight.fire(MAX)

    first = source.SessionTable(gap, lateness, n_values)
    for b, w in zip(batches[:at], walls[:at]):
        first.add(*batch(b, n_values))
        first.fire(w)
        first.purge(w)
    snap = first.snapshot()
    resumed = target.SessionTable.restore(snap)
    assert_snapshots_equal(resumed.snapshot(), snap)
    assert len(resumed) == len(first)
    for (b, w), (late, fired, purged) in zip(zip(batches[at:], walls[at:]), expected[at:]):
        np.testing.assert_array_equal(resumed.add(*batch(b, n_values)), late)
        assert_fired_equal(resumed.fire(w), fired)
        assert resumed.purge(w) == purged
    assert_fired_equal(resumed.fire(MAX), expected_end)
    assert_snapshots_equal(resumed.snapshot(), straight.snapshot())


@pytest.mark.parametrize("lateness", [0, 700])
def test_compiled_equals_twin_on_a_long_stream_through_compactions(lateness):
    # Long enough that sessions are purged by the thousand, keys empty and return, and the compiled
    # pools are compacted mid-stream; the two implementations must still agree after every batch.
    seed = random.randrange(2**32)
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    n = 6_000
    ts = (np.arange(n) * 7 + rng.integers(-300, 300, n)).astype(np.int64)
    keys = rng.integers(0, 300, n).astype(np.int64)
    values = rng.normal(size=(n, 1))
    values[rng.random(n) < 0.05, 0] = np.nan
    wm, final_wm = watermarks_before(ts.tolist(), 200)
    records = list(zip(keys.tolist(), ts.tolist(), values.tolist(), wm))
    cuts = sorted(rng.choice(n, 40, replace=False).tolist())
    batches = split(records, cuts)
    compiled = _core.SessionTable(100, lateness, 1)
    twin = _reference.SessionTable(100, lateness, 1)
    peak = merged = 0
    for b, w in zip(batches, after_batch(records, batches, final_wm)):
        args = batch(b, 1)
        np.testing.assert_array_equal(compiled.add(*args), twin.add(*args))
        peak = max(peak, compiled.nbytes)
        fired = compiled.fire(w)
        assert_fired_equal(fired, twin.fire(w))
        merged += len(fired.merged_key_ids)
        assert compiled.purge(w) == twin.purge(w)
        assert_snapshots_equal(compiled.snapshot(), twin.snapshot())
    assert_fired_equal(compiled.fire(MAX), twin.fire(MAX))
    assert compiled.purge(MAX) == twin.purge(MAX)
    assert len(compiled) == 0 and compiled.nbytes < peak
    if lateness:
        assert merged > 0  # emitted sessions were merged: the reports were exercised too


# --- hand-computed cases -----------------------------------------------------------------------------


@pytest.fixture(params=IMPLS, ids=IMPL_IDS)
def impl(request):
    return request.param


def test_touching_sessions_merge_and_a_gap_of_one_does_not(impl):
    table = impl.SessionTable(10, 0, 1)
    late = table.add(*batch([(1, 0, 1.0, MIN), (1, 10, 2.0, MIN), (2, 0, 5.0, MIN), (2, 11, 6.0, MIN)]))
    assert not late.any()
    # key 1: [0,10) and [10,20) touch -> [0,20); key 2: [0,10) and [11,21) stay apart
    assert sessions_of(table) == [(1, 0, 20, 2), (2, 0, 10, 1), (2, 11, 21, 1)]
    # a record between two sessions merges all three into one
    table.add(*batch([(2, 5, 7.0, MIN)]))
    assert sessions_of(table) == [(1, 0, 20, 2), (2, 0, 21, 3)]
    fired = table.fire(MAX)
    assert fired_rows(fired) == [(1, 0, 20, 2, 3.0, 1.0, 2.0), (2, 0, 21, 3, 18.0, 5.0, 7.0)]
    assert merged_rows(fired) == []


def test_out_of_order_record_extends_the_start(impl):
    table = impl.SessionTable(10, 0, 1)
    table.add(*batch([(1, 100, 1.0, MIN), (1, 95, 2.0, MIN), (1, 104, 3.0, MIN)]))
    assert sessions_of(table) == [(1, 95, 114, 3)]


def test_fire_waits_for_end_minus_one_and_sorts_by_end_start_key(impl):
    table = impl.SessionTable(10, 0, 1)
    table.add(*batch([(3, 0, 1.0, MIN), (1, 5, 1.0, MIN), (2, 0, 1.0, MIN), (0, 40, 1.0, MIN)]))
    assert fired_rows(table.fire(8)) == []
    assert [r[:3] for r in fired_rows(table.fire(9))] == [(2, 0, 10), (3, 0, 10)]
    assert fired_rows(table.fire(9)) == []  # nothing changed since
    assert [r[:3] for r in fired_rows(table.fire(100))] == [(1, 5, 15), (0, 40, 50)]


def test_bridging_record_merges_emitted_sessions_and_reports_them(impl):
    table = impl.SessionTable(10, 5, 1)  # cleanup of [0,10) at 14, of [20,30) at 34
    table.add(*batch([(1, 0, 1.0, MIN), (1, 20, 2.0, MIN)]))
    assert fired_rows(table.fire(12)) == [(1, 0, 10, 1, 1.0, 1.0, 1.0)]
    # ts=10 opens [10,20), which touches both: merged [0,30), late only if W >= 29 + 5
    late = table.add(*batch([(1, 10, 4.0, 12)]))
    assert late.tolist() == [False]
    assert sessions_of(table) == [(1, 0, 30, 3)]
    assert fired_rows(table.fire(28)) == []
    fired = table.fire(29)
    assert fired_rows(fired) == [(1, 0, 30, 3, 7.0, 1.0, 4.0)]
    assert merged_rows(fired) == [(1, 0, 10)]
    assert merged_rows(table.fire(40)) == []  # reported once


def test_two_emitted_sessions_merged_are_both_reported_in_order(impl):
    table = impl.SessionTable(10, 100, 1)
    table.add(*batch([(7, 0, 1.0, MIN), (7, 20, 1.0, MIN), (8, 0, 1.0, MIN)]))
    assert len(fired_rows(table.fire(29))) == 3
    table.add(*batch([(7, 10, 1.0, 29), (8, 3, 1.0, 29)]))  # key 8: [3,13) grows [0,10) to [0,13)
    fired = table.fire(50)
    assert [r[:4] for r in fired_rows(fired)] == [(8, 0, 13, 2), (7, 0, 30, 3)]
    assert merged_rows(fired) == [(7, 0, 10), (8, 0, 10), (7, 20, 30)]


def test_late_record_that_would_bridge_two_sessions_changes_nothing(impl):
    table = impl.SessionTable(10, 5, 1)
    table.add(*batch([(1, 0, 1.0, MIN), (1, 20, 2.0, MIN)]))
    table.fire(30)
    before = table.snapshot()
    # W=35 is past both cleanup times (14 and 34): the record would open [10,20) alone, 35 >= 19 + 5
    late = table.add(*batch([(1, 10, 4.0, 35)]))
    assert late.tolist() == [True]
    assert_snapshots_equal(table.snapshot(), {**before, "watermark": 35})
    assert fired_rows(table.fire(100)) == []


def test_expired_session_is_never_merged_whether_or_not_purge_ran(impl):
    # [0,10) is past its cleanup time (14) at W=16; the record [10,20) merges only with [20,30)
    for purge_first in (False, True):
        table = impl.SessionTable(10, 5, 1)
        table.add(*batch([(1, 0, 1.0, MIN), (1, 20, 2.0, MIN)]))
        table.fire(16)
        if purge_first:
            assert table.purge(16) == 1
        assert table.add(*batch([(1, 10, 4.0, 16)])).tolist() == [False]
        expected = [(1, 10, 30, 2)] if purge_first else [(1, 0, 10, 1), (1, 10, 30, 2)]
        assert sessions_of(table) == expected
        assert fired_rows(table.fire(100)) == [(1, 10, 30, 2, 6.0, 2.0, 4.0)]


def test_allowed_lateness_updates_then_late(impl):
    table = impl.SessionTable(10, 10, 1)
    table.add(*batch([(1, 0, 1.0, MIN)]))
    assert fired_rows(table.fire(9)) == [(1, 0, 10, 1, 1.0, 1.0, 1.0)]
    # within lateness and growing the session: [5,15) merges into [0,15), the old bounds are superseded
    assert table.add(*batch([(1, 5, 2.0, 9)])).tolist() == [False]
    fired = table.fire(14)
    assert fired_rows(fired) == [(1, 0, 15, 2, 3.0, 1.0, 2.0)]
    assert merged_rows(fired) == [(1, 0, 10)]
    # inside the session: same bounds, so an updated emission and nothing merged
    assert table.add(*batch([(1, 3, -1.0, 20)])).tolist() == [False]
    fired = table.fire(20)
    assert fired_rows(fired) == [(1, 0, 15, 3, 2.0, -1.0, 2.0)]
    assert merged_rows(fired) == []
    # W=24 >= 14 + 10: late, and the session is purged at the same watermark
    assert table.add(*batch([(1, 2, 9.0, 24)])).tolist() == [True]
    assert fired_rows(table.fire(24)) == []
    assert table.purge(23) == 0
    assert table.purge(24) == 1
    assert len(table) == 0


def test_lateness_is_saturating_near_int64_max(impl):
    table = impl.SessionTable(10, MAX, 1)
    table.add(*batch([(1, 0, 1.0, MIN)]))
    table.fire(MAX)
    # end - 1 + lateness saturates at INT64_MAX, so only W = INT64_MAX makes a record late
    assert table.add(*batch([(1, 1, 1.0, MAX - 1), (1, 2, 1.0, MAX)])).tolist() == [False, True]
    assert table.purge(MAX - 1) == 0
    assert table.purge(MAX) == 1


def test_timestamps_at_the_int64_limits(impl):
    table = impl.SessionTable(5, 0, 1)
    late = table.add(*batch([(1, MAX - 5, 1.0, MIN), (1, MIN, 2.0, MIN), (1, MIN + 5, 3.0, MIN)]))
    assert not late.any()
    assert sessions_of(table) == [(1, MIN, MIN + 10, 2), (1, MAX - 5, MAX, 1)]
    assert [r[:3] for r in fired_rows(table.fire(MAX))] == [(1, MIN, MIN + 10), (1, MAX - 5, MAX)]


def test_session_end_overflow_names_the_timestamp_and_applies_nothing(impl):
    table = impl.SessionTable(5, 0, 1)
    with pytest.raises(ValueError, match=rf"ts={MAX - 4}: session end ts \+ 5 exceeds the int64 range"):
        table.add(*batch([(1, 0, 1.0, MIN), (1, MAX - 4, 1.0, MIN)]))
    assert len(table) == 0


def test_nan_propagates_in_sums_and_is_ignored_by_min_max(impl):
    table = impl.SessionTable(10, 0, 2)
    table.add(*batch([(1, 0, (NAN, NAN), MIN), (1, 1, (2.0, NAN), MIN), (1, 2, (-1.0, NAN), MIN)], 2))
    fired = table.fire(MAX)
    assert math.isnan(fired.sums[0, 0]) and math.isnan(fired.sums[0, 1])
    assert fired.mins[0].tolist()[0] == -1.0 and fired.maxs[0].tolist()[0] == 2.0
    assert math.isnan(fired.mins[0, 1]) and math.isnan(fired.maxs[0, 1])  # all NaN -> NaN
    assert fired.sums.shape == fired.mins.shape == fired.maxs.shape == (1, 2)


def test_no_value_columns(impl):
    table = impl.SessionTable(10, 0, 0)
    table.add(np.array([1, 1]), np.array([0, 5]), np.empty((2, 0)), np.array([MIN, MIN]))
    fired = table.fire(MAX)
    assert fired.counts.tolist() == [2] and fired.sums.shape == (1, 0)


def test_empty_batches_and_empty_fire(impl):
    table = impl.SessionTable(10, 0, 1)
    late = table.add(np.array([], dtype=np.int64), np.array([], dtype=np.int64), np.empty((0, 1)), np.array([], dtype=np.int64))
    assert late.dtype == np.bool_ and late.shape == (0,)
    fired = table.fire(MAX)
    assert fired.key_ids.dtype == np.int64 and fired.sums.shape == (0, 1) and fired.merged_ends.shape == (0,)
    assert table.purge(MAX) == 0 and len(table) == 0


def test_watermarks_never_go_backwards(impl):
    table = impl.SessionTable(10, 0, 1)
    # the second record's wm_before=0 is clamped to 200: [150,160) has 200 >= 159, so it is late
    assert table.add(*batch([(1, 300, 1.0, 200), (1, 150, 1.0, 0)])).tolist() == [False, True]
    assert table.add(*batch([(1, 195, 1.0, 0)])).tolist() == [False]  # 200 < 204
    table.purge(500)
    assert table.add(*batch([(1, 400, 1.0, 0)])).tolist() == [True]  # purge's watermark counts too


def test_purge_frees_memory(impl):
    seed = random.randrange(2**32)
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    table = impl.SessionTable(30_000, 0, 2)
    n = 5_000
    keys = rng.integers(0, 2_000, n)
    ts = np.sort(rng.integers(0, 10**7, n))
    table.add(keys, ts, rng.normal(size=(n, 2)), np.full(n, MIN))
    full = table.nbytes
    assert len(table) > 1_000 and full > 0
    live = len(table)
    table.fire(MAX)
    assert table.purge(MAX) == live
    assert len(table) == 0
    assert table.nbytes < full / 10


def test_fire_and_purge_return_quickly_when_nothing_is_due(impl):
    table = impl.SessionTable(10, 5, 1)
    table.add(*batch([(1, 100, 1.0, MIN)]))
    assert fired_rows(table.fire(50)) == [] and table.purge(50) == 0
    assert len(fired_rows(table.fire(109))) == 1
    assert fired_rows(table.fire(200)) == []
    assert table.purge(113) == 0 and table.purge(114) == 1


# --- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, error, message",
    [
        ((0, 0, 1), ValueError, "gap must be > 0, got 0"),
        ((-5, 0, 1), ValueError, "gap must be > 0, got -5"),
        ((1.5, 0, 1), TypeError, "gap must be an int"),
        ((10, -1, 1), ValueError, "lateness must be >= 0, got -1"),
        ((10, 0, -1), ValueError, "n_values must be >= 0, got -1"),
        ((10, 0, "2"), TypeError, "n_values must be an int"),
        ((2**63, 0, 1), ValueError, "does not fit in int64"),
    ],
)
def test_constructor_refuses_bad_parameters(impl, args, error, message):
    with pytest.raises(error, match=message):
        impl.SessionTable(*args)


def test_timedelta_durations(impl):
    import datetime

    table = impl.SessionTable(datetime.timedelta(seconds=30), datetime.timedelta(seconds=1), 1)
    assert (table.gap, table.lateness) == (30_000, 1_000)


@pytest.mark.parametrize(
    "keys, ts, values, wm, error, message",
    [
        ([1, 2], [1.5, 2.0], [[1.0], [2.0]], [0, 0], TypeError, "ts must be an int64 array, got dtype float64"),
        ([[1, 2]], [1, 2], [[1.0], [2.0]], [0, 0], ValueError, "key_ids must be a 1-D array"),
        ([1, 2], [1, 2, 3], [[1.0], [2.0]], [0, 0], ValueError, "key_ids=2, ts=3, wm_before=2"),
        ([1, 2], [1, 2], [[1.0], [2.0]], [0], ValueError, "wm_before=1"),
        ([1, 2], [1, 2], [[1.0, 2.0]], [0, 0], ValueError, r"values must have shape \(2, 1\)"),
        ([1, 2], [1, 2], [["a"], ["b"]], [0, 0], TypeError, "values must be a float64 array"),
        ([1, 2], [1, 2], [[1.0], [2.0]], [0.5, 0.5], TypeError, "wm_before must be an int64 array"),
        ([True, False], [1, 2], [[1.0], [2.0]], [0, 0], TypeError, "key_ids must be an int64 array, got dtype bool"),
    ],
)
def test_add_refuses_bad_arrays_before_any_work(impl, keys, ts, values, wm, error, message):
    table = impl.SessionTable(10, 0, 1)
    with pytest.raises(error, match=message):
        table.add(np.array(keys), np.array(ts), np.array(values), np.array(wm))
    assert len(table) == 0


def test_fire_and_purge_refuse_non_integer_watermarks(impl):
    table = impl.SessionTable(10, 0, 1)
    with pytest.raises(TypeError, match="watermark must be an int"):
        table.fire(1.5)
    with pytest.raises(TypeError, match="watermark must be an int"):
        table.purge("10")
    with pytest.raises(ValueError, match="does not fit in int64"):
        table.fire(2**63)


def test_restore_refuses_damaged_snapshots(impl):
    table = impl.SessionTable(10, 0, 1)
    table.add(*batch([(1, 0, 1.0, MIN), (1, 50, 1.0, MIN), (2, 0, 1.0, MIN)]))
    good = table.snapshot()
    missing = dict(good)
    del missing["dirty"]
    with pytest.raises(ValueError, match="snapshot is missing 'dirty'"):
        impl.SessionTable.restore(missing)
    with pytest.raises(TypeError, match="snapshot must be a dict"):
        impl.SessionTable.restore([1, 2])
    unsorted = {**good, "key_ids": good["key_ids"][::-1].copy()}
    with pytest.raises(ValueError, match=r"sorted by \(key_id, start, end\)"):
        impl.SessionTable.restore(unsorted)
    with pytest.raises(ValueError, match="arrays must have equal lengths"):
        impl.SessionTable.restore({**good, "counts": good["counts"][:2]})
    with pytest.raises(ValueError, match="merged_owners must index"):
        impl.SessionTable.restore({**good, "merged_key_ids": np.array([1]), "merged_starts": np.array([0]),
                                   "merged_ends": np.array([5]), "merged_owners": np.array([3])})
    with pytest.raises(ValueError, match=r"sums must have shape \(3, 1\)"):
        impl.SessionTable.restore({**good, "sums": np.zeros((3, 2))})
