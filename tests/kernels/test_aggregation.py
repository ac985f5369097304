"""WindowAggTable: compiled kernel vs pure-Python twin, hand-computed semantics, bad input, memory.

Semantics (SEMANTICS.md): a window ``[start, start + size)`` fires once ``W >= end - 1`` and again
after every later addition (allowed lateness); it is purged once ``W >= end - 1 + lateness``
(saturating). Fired windows come sorted by ``(end, start, key_id)``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import _core, _reference

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
IMPLEMENTATIONS = [_core, _reference]
impl_ids = ["compiled", "twin"]


def add(table, keys, starts, values=None, n_values=1):
    keys = np.asarray(keys, dtype=np.int64)
    starts = np.asarray(starts, dtype=np.int64)
    if values is None:
        values = np.ones((len(keys), n_values))
    table.add(keys, starts, np.asarray(values, dtype=np.float64).reshape(len(keys), n_values))


def fired_rows(fired):
    """Fired windows as plain tuples (NaN kept as the string 'nan' so rows compare equal)."""
    def f(x):
        return "nan" if x != x else float(x)

    return [
        (int(k), int(s), int(e), int(c), [f(x) for x in su], [f(x) for x in mi], [f(x) for x in ma])
        for k, s, e, c, su, mi, ma in zip(*fired)
    ]


def assert_fired_equal(a, b):
    for name, x, y in zip(a._fields, a, b):
        assert x.dtype == y.dtype, name
        assert x.shape == y.shape, name
        np.testing.assert_array_equal(x, y, err_msg=name)


def assert_snapshots_equal(a, b):
    assert list(a) == list(b)
    for name in a:
        x, y = a[name], b[name]
        if isinstance(x, np.ndarray):
            assert isinstance(y, np.ndarray) and x.dtype == y.dtype and x.shape == y.shape, name
            np.testing.assert_array_equal(x, y, err_msg=name)
        else:
            assert type(x) is type(y) and x == y, name


@pytest.fixture(params=[False, True], ids=["direct", "partitioned"])
def partitioned(request):
    """Run compiled tests on both add paths (large batches are hash-partitioned first)."""
    default = 65536
    _core._agg_set_partition_min(1 if request.param else default)
    yield request.param
    _core._agg_set_partition_min(default)


# --- hand-computed examples ------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=impl_ids)
def test_fires_at_end_minus_one_sorted_by_end_start_key(impl):
    t = impl.WindowAggTable(1000, 0, 1)
    add(t, [7, 3, 3, 5, 3], [1000, 0, 0, 0, 1000], [1.0, 2.0, 4.0, -1.0, 8.0])
    assert len(t) == 4
    assert fired_rows(t.fire(998)) == []
    assert fired_rows(t.fire(999)) == [
        (3, 0, 1000, 2, [6.0], [2.0], [4.0]),
        (5, 0, 1000, 1, [-1.0], [-1.0], [-1.0]),
    ]
    assert fired_rows(t.fire(999)) == []  # nothing new: no second emission
    assert fired_rows(t.fire(INT64_MAX)) == [
        (3, 1000, 2000, 1, [8.0], [8.0], [8.0]),
        (7, 1000, 2000, 1, [1.0], [1.0], [1.0]),
    ]
    assert len(t) == 4  # firing keeps state; purge drops it


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=impl_ids)
def test_allowed_lateness_reemits_updated_window_and_purges_at_end_minus_one_plus_lateness(impl):
    t = impl.WindowAggTable(size=10, lateness=5, n_values=1)
    add(t, [1, 1], [0, 0], [1.0, 2.0])
    assert fired_rows(t.fire(9)) == [(1, 0, 10, 2, [3.0], [1.0], [2.0])]
    assert t.purge(13) == 0  # kept until W >= 9 + 5
    add(t, [1], [0], [-4.0])  # allowed-late addition
    snap = t.snapshot()
    assert snap["emitted"].tolist() == [True] and snap["dirty"].tolist() == [True]
    assert fired_rows(t.fire(13)) == [(1, 0, 10, 3, [-1.0], [-4.0], [2.0])]
    assert fired_rows(t.fire(13)) == []
    assert t.purge(14) == 1
    assert len(t) == 0


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=impl_ids)
def test_purge_refuses_to_drop_windows_never_emitted(impl):
    t = impl.WindowAggTable(10, 0, 1)
    add(t, [1, 2], [0, 10], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"purge\(watermark=9\) would drop windows with additions not yet emitted"):
        t.purge(9)
    assert len(t) == 2
    assert len(t.fire(9).key_ids) == 1
    assert t.purge(9) == 1
    assert t.snapshot()["key_ids"].tolist() == [2]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=impl_ids)
def test_nan_propagates_in_sums_and_is_ignored_by_min_max(impl):
    nan = float("nan")
    t = impl.WindowAggTable(10, 0, 2)
    add(t, [1, 1, 1, 2], [0, 0, 0, 0], [[nan, nan], [3.0, nan], [1.0, nan], [nan, 5.0]], n_values=2)
    assert fired_rows(t.fire(9)) == [
        (1, 0, 10, 3, ["nan", "nan"], [1.0, "nan"], [3.0, "nan"]),
        (2, 0, 10, 1, ["nan", 5.0], ["nan", 5.0], ["nan", 5.0]),
    ]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=impl_ids)
def test_count_only_table_has_zero_value_columns(impl):
    t = impl.WindowAggTable(5, 0, 0)
    t.add(np.array([1, 1, 2]), np.array([-5, -5, 0]), np.empty((3, 0)))
    fired = t.fire(INT64_MAX)
    assert fired.counts.tolist() == [2, 1]
    assert fired.starts.tolist() == [-5, 0] and fired.ends.tolist() == [0, 5]
    assert fired.sums.shape == fired.mins.shape == fired.maxs.shape == (2, 0)
    assert fired.sums.dtype == np.float64


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=impl_ids)
def test_negative_starts_and_empty_batches(impl):
    t = impl.WindowAggTable(1000, 0, 1)
    add(t, [], [], [])
    assert len(t) == 0 and t.purge(INT64_MAX) == 0
    empty = t.fire(INT64_MAX)
    assert all(len(a) == 0 for a in empty) and empty.sums.shape == (0, 1)
    add(t, [0], [-2000], [1.5])
    assert fired_rows(t.fire(-1002)) == []
    assert fired_rows(t.fire(-1001)) == [(0, -2000, -1000, 1, [1.5], [1.5], [1.5])]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=impl_ids)
def test_time_arithmetic_saturates_near_int64_limits(impl):
    size = 1000
    top = INT64_MAX - size  # the last start whose end is representable
    t = impl.WindowAggTable(size, INT64_MAX, 1)
    add(t, [1, 1], [top, INT64_MIN], [1.0, 2.0])
    fired = t.fire(INT64_MAX)
    assert fired.ends.tolist() == [INT64_MIN + size, INT64_MAX]
    # low window: end - 1 + lateness = INT64_MIN + 999 + INT64_MAX = 998
    assert t.purge(997) == 0
    assert t.purge(998) == 1
    # top window: end - 1 + lateness saturates at INT64_MAX, so only W = INT64_MAX purges it
    assert t.purge(INT64_MAX - 1) == 0
    assert t.purge(INT64_MAX) == 1


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=impl_ids)
def test_start_whose_end_overflows_is_refused_before_any_work(impl):
    t = impl.WindowAggTable(1000, 0, 1)
    bad = INT64_MAX - 999
    with pytest.raises(ValueError, match=f"starts holds {bad}, whose window end {bad} \\+ 1000 does not fit in int64"):
        add(t, [1, 2], [0, bad], [1.0, 1.0])
    assert len(t) == 0


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=impl_ids)
def test_accessors(impl):
    t = impl.WindowAggTable(60_000, 5_000, 3)
    assert (t.size, t.lateness, t.n_values) == (60_000, 5_000, 3)
    assert t.nbytes > 0


# --- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=impl_ids)
@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((0, 0, 1), ValueError, "size must be > 0, got 0"),
        ((-5, 0, 1), ValueError, "size must be > 0, got -5"),
        ((10, -1, 1), ValueError, "lateness must be >= 0, got -1"),
        ((10, 0, -1), ValueError, "n_values must be >= 0, got -1"),
        ((10, 0, 2**20), ValueError, "n_values must be <= 65536"),
        ((1.5, 0, 1), TypeError, "size must be an int"),
        ((10, True, 1), TypeError, "lateness must be an int"),
        ((10, 0, "1"), TypeError, "n_values must be an int"),
    ],
)
def test_bad_constructor_arguments(impl, args, error, message):
    with pytest.raises(error, match=message):
        impl.WindowAggTable(*args)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=impl_ids)
@pytest.mark.parametrize(
    ("keys", "starts", "values", "error", "message"),
    [
        (np.array([1.0]), np.array([0]), np.ones((1, 1)), TypeError, "key_ids must be an int64 array"),
        (np.array([1]), np.array([[0]]), np.ones((1, 1)), ValueError, "starts must be a 1-D array"),
        (np.array([1, 2]), np.array([0]), np.ones((2, 1)), ValueError, "key_ids=2, starts=1"),
        (np.array([1]), np.array([0]), np.ones((1, 2)), ValueError, r"values must have shape \(1, 1\)"),
        (np.array([1]), np.array([0]), np.array([["x"]]), TypeError, "values must be a float64 array"),
        (np.array([1]), np.array([0]), np.array([[True]]), TypeError, "values must be a float64 array"),
        (np.array([1]), np.array([0], dtype=np.uint64) + 2**63, np.ones((1, 1)), ValueError, "does not fit in int64"),
    ],
)
def test_bad_add_arguments_raise_before_any_work(impl, keys, starts, values, error, message):
    t = impl.WindowAggTable(10, 0, 1)
    with pytest.raises(error, match=message):
        t.add(keys, starts, values)
    assert len(t) == 0


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=impl_ids)
@pytest.mark.parametrize("watermark", [1.5, "10", None, True, 2**63])
def test_bad_watermarks(impl, watermark):
    t = impl.WindowAggTable(10, 0, 1)
    with pytest.raises((TypeError, ValueError), match="watermark"):
        t.fire(watermark)
    with pytest.raises((TypeError, ValueError), match="watermark"):
        t.purge(watermark)


def _good_snapshot():
    t = _reference.WindowAggTable(10, 0, 1)
    add(t, [1, 2, 1], [0, 0, 10], [1.0, 2.0, 3.0])
    return t.snapshot()


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=impl_ids)
@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda s: s.pop("dirty"), ValueError, "snapshot is missing dirty"),
        (lambda s: s.update(key_ids=np.array([1, 1, 1])), ValueError, "window \\(start=0, key_id=1\\) twice"),
        # windows come in any order, so a duplicate need not be next to its twin
        (lambda s: s.update(starts=np.array([0, 0, 0])), ValueError, "window \\(start=0, key_id=1\\) twice"),
        (lambda s: s.update(counts=np.array([1, 0, 1])), ValueError, "counts'\\] must be >= 1"),
        (lambda s: s.update(counts=np.array([1, 2**62, 1])), ValueError, "counts'\\] must be < 2\\*\\*62"),
        (lambda s: s.update(counts=np.array([1.0, 1.0, 1.0])), TypeError, "counts'\\] must be an int64 array"),
        (lambda s: s.update(sums=np.ones((3, 2))), ValueError, "sums'\\] must have shape \\(3, 1\\)"),
        (lambda s: s.update(emitted=np.zeros(3, bool), dirty=np.zeros(3, bool)), ValueError, "neither emitted nor dirty"),
        (lambda s: s.update(size=0), ValueError, "size'\\] must be > 0"),
        (lambda s: s.update(starts=np.array([0, 0, INT64_MAX])), ValueError, "does not fit in int64"),
    ],
)
def test_restore_refuses_bad_snapshots(impl, change, error, message):
    snap = _good_snapshot()
    change(snap)
    with pytest.raises(error, match=message):
        impl.WindowAggTable.restore(snap)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=impl_ids)
def test_restore_refuses_non_dict(impl):
    with pytest.raises(TypeError, match="snapshot must be a dict"):
        impl.WindowAggTable.restore([1, 2])


# --- differential (hypothesis): compiled vs twin ---------------------------------------------------

SIZES = st.sampled_from([1, 3, 1000, 2**40])
EDGE_TIMES = [INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX - 1, INT64_MAX]
values_st = st.floats(allow_nan=True, allow_infinity=True, width=64)


@st.composite
def scenarios(draw):
    size = draw(SIZES)
    lateness = draw(st.sampled_from([0, 1, 7, 5000, INT64_MAX]) | st.integers(0, 2 * size))
    n_values = draw(st.integers(0, 2))
    many_keys = draw(st.booleans())
    keys_st = st.integers(0, 200) if many_keys else st.just(3)
    wide = draw(st.booleans())
    if wide:  # starts anywhere in int64, key ids too (exercises the sort fallback)
        keys_st = keys_st | st.integers(INT64_MIN, INT64_MAX)
        starts_st = st.integers(INT64_MIN, INT64_MAX - size)
    else:
        starts_st = st.integers(-20, 20).map(lambda w: w * size)
    ops = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["add", "add", "fire", "purge", "restore"]))
        if kind == "add":
            m = draw(st.integers(0, 40))
            keys = draw(st.lists(keys_st, min_size=m, max_size=m))
            starts = draw(st.lists(starts_st, min_size=m, max_size=m))
            vals = draw(st.lists(values_st, min_size=m * n_values, max_size=m * n_values))
            splits = sorted(draw(st.lists(st.integers(0, m), max_size=3)))
            ops.append(("add", keys, starts, vals, splits))
        elif kind in ("fire", "purge"):
            if wide:
                w = draw(st.integers(INT64_MIN, INT64_MAX) | st.sampled_from(EDGE_TIMES))
            else:
                w = draw(st.integers(-25, 25).map(lambda x: x * size - 1) | st.sampled_from(EDGE_TIMES))
            ops.append((kind, w))
        else:
            ops.append(("restore", draw(st.sampled_from(["compiled", "twin", "cross"]))))
    return size, lateness, n_values, ops


def _call(fn, *args):
    try:
        return "ok", fn(*args)
    except (ValueError, TypeError) as exc:
        return type(exc).__name__, str(exc)


@settings(max_examples=100, deadline=None)
@given(scenario=scenarios(), partition=st.booleans())
def test_compiled_matches_twin_on_random_interleavings(scenario, partition):
    size, lateness, n_values, ops = scenario
    _core._agg_set_partition_min(1 if partition else 65536)
    try:
        compiled = _core.WindowAggTable(size, lateness, n_values)
        twin = _reference.WindowAggTable(size, lateness, n_values)
        for op in ops:
            if op[0] == "add":
                _, keys, starts, vals, splits = op
                keys = np.array(keys, dtype=np.int64)
                starts = np.array(starts, dtype=np.int64)
                vals = np.array(vals, dtype=np.float64).reshape(len(keys), n_values)
                twin.add(keys, starts, vals)  # whole batch
                bounds = [0, *splits, len(keys)]
                for lo, hi in zip(bounds, bounds[1:]):  # compiled: the same batch split anywhere
                    compiled.add(keys[lo:hi], starts[lo:hi], vals[lo:hi])
            elif op[0] == "fire":
                assert_fired_equal(compiled.fire(op[1]), twin.fire(op[1]))
            elif op[0] == "purge":
                assert _call(compiled.purge, op[1]) == _call(twin.purge, op[1])
            else:
                if op[1] == "compiled":
                    compiled = _core.WindowAggTable.restore(compiled.snapshot())
                elif op[1] == "twin":
                    twin = _reference.WindowAggTable.restore(twin.snapshot())
                else:  # swap implementations through each other's snapshots
                    compiled, twin = (
                        _core.WindowAggTable.restore(twin.snapshot()),
                        _reference.WindowAggTable.restore(compiled.snapshot()),
                    )
            assert len(compiled) == len(twin)
            assert_snapshots_equal(compiled.snapshot(), twin.snapshot())
        assert_fired_equal(compiled.fire(INT64_MAX), twin.fire(INT64_MAX))
    finally:
        _core._agg_set_partition_min(65536)


def test_many_windows_compiled_matches_twin(partitioned):
    """Thousands of windows: the radix-sort path of fire/snapshot, index growth and shrinking."""
    seed = 20261126
    print("seed", seed)
    rng = np.random.default_rng(seed)
    compiled = _core.WindowAggTable(100, 50, 1)
    twin = _reference.WindowAggTable(100, 50, 1)
    watermark = INT64_MIN
    for step in range(6):
        n = 2000
        keys = rng.integers(0, 500, n)
        starts = (rng.integers(0, 60, n) + step * 10) * 100
        vals = rng.normal(size=(n, 1))
        compiled.add(keys, starts, vals)
        twin.add(keys, starts, vals)
        watermark = max(watermark, int(step * 1000 - 1))
        assert_fired_equal(compiled.fire(watermark), twin.fire(watermark))
        assert compiled.purge(watermark) == twin.purge(watermark)
        assert_snapshots_equal(compiled.snapshot(), twin.snapshot())
    assert_fired_equal(compiled.fire(INT64_MAX), twin.fire(INT64_MAX))


@pytest.mark.parametrize("seed", [5])
def test_watermark_creeping_through_many_live_windows_compiled_matches_twin(partitioned, seed):
    """Partitions read unevenly: thousands of live windows, each watermark step purges a few percent
    of them (the compiled purge then deletes index slots and moves entries instead of rebuilding),
    and later batches add to surviving windows (their index slots must still be found) and to new ones."""
    print("seed", seed)
    rng = np.random.default_rng(seed)
    compiled = _core.WindowAggTable(100, 200, 1)
    twin = _reference.WindowAggTable(100, 200, 1)
    keys = rng.integers(0, 300, 8_000)
    starts = rng.integers(0, 100, 8_000) * 100
    vals = rng.normal(size=(8_000, 1))
    compiled.add(keys, starts, vals)
    twin.add(keys, starts, vals)
    for step in range(30):
        watermark = step * 300 - 1
        n = 600
        # every record lands in a window that is not purged yet (start + 100 - 1 + 200 > watermark)
        k = rng.integers(0, 400, n)
        s = (rng.integers(0, 30, n) + max(0, (watermark - 298) // 100 + 1)) * 100
        v = rng.normal(size=(n, 1))
        compiled.add(k, s, v)
        twin.add(k, s, v)
        assert_fired_equal(compiled.fire(watermark), twin.fire(watermark))
        assert compiled.purge(watermark) == twin.purge(watermark)
        assert len(compiled) == len(twin)
        assert_snapshots_equal(compiled.snapshot(), twin.snapshot())
        if step % 5 == 0:
            restored = _core.WindowAggTable.restore(compiled.snapshot_unordered())
            assert_snapshots_equal(restored.snapshot(), twin.snapshot())
    assert_fired_equal(compiled.fire(INT64_MAX), twin.fire(INT64_MAX))


# --- the end index (compiled): windows bucketed by end, so fire/purge take only what is due ------


def _step(compiled, twin, watermark, check_snapshot=True):
    """fire then purge at ``watermark`` on both tables; they must agree."""
    assert_fired_equal(compiled.fire(watermark), twin.fire(watermark))
    assert _call(compiled.purge, watermark) == _call(twin.purge, watermark)
    assert len(compiled) == len(twin)
    if check_snapshot:
        assert_snapshots_equal(compiled.snapshot(), twin.snapshot())


def _add_both(compiled, twin, keys, starts, vals):
    keys = np.asarray(keys, dtype=np.int64)
    starts = np.asarray(starts, dtype=np.int64)
    vals = np.asarray(vals, dtype=np.float64).reshape(len(keys), -1)
    compiled.add(keys, starts, vals)
    twin.add(keys, starts, vals)


@pytest.mark.parametrize("seed", [3, 4])
def test_many_distinct_ends_compiled_matches_twin(partitioned, seed):
    """1 ms windows: nearly every window has an end of its own (thousands of buckets, created,
    fired and dropped one by one; most of them dropped at once, which renumbers the survivors)."""
    print("seed", seed)
    rng = np.random.default_rng(seed)
    compiled = _core.WindowAggTable(1, 30, 1)
    twin = _reference.WindowAggTable(1, 30, 1)
    for step in range(12):
        n = 3000
        low = step * 500 - 30  # never late: start + 1 - 1 + 30 > watermark of the previous step
        _add_both(compiled, twin, rng.integers(0, 5, n), rng.integers(low, low + 4000, n), rng.normal(size=n))
        _step(compiled, twin, step * 500 - 1 + int(rng.integers(0, 40)))
    _step(compiled, twin, 5_000)  # most of the ~4,000 buckets go at once
    _add_both(compiled, twin, rng.integers(0, 5, 500), rng.integers(4_971, 9_000, 500), rng.normal(size=500))
    _step(compiled, twin, 7_000)
    assert_fired_equal(compiled.fire(INT64_MAX), twin.fire(INT64_MAX))
    assert compiled.purge(INT64_MAX) == twin.purge(INT64_MAX)
    assert len(compiled) == 0


@pytest.mark.parametrize("seed", [8, 9])
def test_late_additions_refire_after_purges_moved_and_compacted_entries(partitioned, seed):
    """Windows fired, then moved by purges (a few dropped: the last entries fill the holes; many
    dropped: compaction), then given allowed-late additions: fire must re-emit exactly those (and
    new windows of already-fired ends), each once, with the exact aggregate."""
    print("seed", seed)
    rng = np.random.default_rng(seed)
    size, lateness = 100, 10_000
    compiled = _core.WindowAggTable(size, lateness, 2)
    twin = _reference.WindowAggTable(size, lateness, 2)
    _add_both(compiled, twin, rng.integers(0, 400, 20_000), rng.integers(0, 200, 20_000) * size,
              rng.normal(size=(20_000, 2)))
    watermark = -1
    for step in range(25):
        watermark += int(rng.choice([0, 99, 500, 2_000]))
        _step(compiled, twin, watermark, check_snapshot=step % 5 == 0)
        # late (but allowed) records for fired windows still live, some twice in one batch,
        # new keys for fired ends, and windows not due yet
        lo = max(0, (watermark + 1 - lateness) // size + 1)
        n = 1_500
        starts = rng.integers(lo, lo + 150, n) * size
        _add_both(compiled, twin, rng.integers(0, 450, n), starts, rng.normal(size=(n, 2)))
        if step % 4 == 3:  # re-dirty again before any fire
            _add_both(compiled, twin, rng.integers(0, 450, n), starts, rng.normal(size=(n, 2)))
    _step(compiled, twin, watermark)
    assert_fired_equal(compiled.fire(INT64_MAX), twin.fire(INT64_MAX))
    assert compiled.purge(INT64_MAX) == twin.purge(INT64_MAX) and len(compiled) == 0


@pytest.mark.parametrize("source", ["snapshot", "snapshot_unordered", "shuffled"])
def test_restore_then_fire_and_refire_matches_uninterrupted_table(source):
    """A restored table rebuilds its end index from the flags alone: clean and dirty windows of one
    end, never-emitted ones; fire, late additions and purges then go exactly as without the restore."""
    seed = 21
    print("seed", seed)
    rng = np.random.default_rng(seed)
    original = _core.WindowAggTable(1000, 3000, 1)
    twin = _reference.WindowAggTable(1000, 3000, 1)
    _add_both(original, twin, rng.integers(0, 300, 6000), rng.integers(0, 8, 6000) * 1000, rng.normal(size=6000))
    _step(original, twin, 2_999)  # windows of ends 1000..3000 emitted
    # late additions to some of them, and new windows: ends with clean and dirty windows mixed
    _add_both(original, twin, rng.integers(0, 400, 800), rng.integers(0, 9, 800) * 1000, rng.normal(size=800))
    snap = original.snapshot_unordered() if source == "snapshot_unordered" else original.snapshot()
    if source == "shuffled":
        order = rng.permutation(len(snap["key_ids"]))
        snap = {k: (v[order] if isinstance(v, np.ndarray) else v) for k, v in snap.items()}
    restored = _core.WindowAggTable.restore(snap)
    assert_snapshots_equal(restored.snapshot(), twin.snapshot())
    for watermark in (2_999, 4_999):
        assert_fired_equal(restored.fire(watermark), twin.fire(watermark))
        assert restored.purge(watermark) == twin.purge(watermark)
        _add_both(restored, twin, rng.integers(0, 400, 500), rng.integers(3, 9, 500) * 1000, rng.normal(size=500))
        assert_snapshots_equal(restored.snapshot(), twin.snapshot())
    assert_fired_equal(restored.fire(INT64_MAX), twin.fire(INT64_MAX))


def test_fire_of_an_earlier_watermark_leaves_later_dirty_windows_queued():
    """fire(W) takes the due ends only; windows re-dirtied after it whose end is due stay found
    by a later fire, also when a fire with a smaller watermark comes in between."""
    compiled = _core.WindowAggTable(10, 100, 1)
    twin = _reference.WindowAggTable(10, 100, 1)
    _add_both(compiled, twin, [1, 2, 3], [0, 10, 20], [1.0, 2.0, 3.0])
    _step(compiled, twin, 19)  # ends 10 and 20 fire
    _add_both(compiled, twin, [1, 2, 4], [0, 10, 10], [5.0, 6.0, 7.0])  # two late additions, one new key
    _step(compiled, twin, 5)  # nothing due at 5: all three stay dirty
    _step(compiled, twin, 9)  # only the end-10 window
    _step(compiled, twin, 29)
    assert len(compiled) == 4  # (lateness 100: nothing purged yet)


# --- snapshot/restore, memory, scale ---------------------------------------------------------------


def test_snapshot_restore_continue_equals_uninterrupted_run_across_implementations():
    seed = 7
    print("seed", seed)
    rng = np.random.default_rng(seed)
    batches = [
        (rng.integers(0, 50, 300), rng.integers(-5, 5, 300) * 1000, rng.normal(size=(300, 2))) for _ in range(4)
    ]
    straight = _core.WindowAggTable(1000, 2000, 2)
    out_straight = []
    for i, batch in enumerate(batches):
        straight.add(*batch)
        out_straight.append(fired_rows(straight.fire(i * 1000 - 1)))
        straight.purge(i * 1000 - 1)
    interrupted = _core.WindowAggTable(1000, 2000, 2)
    out = []
    for i, batch in enumerate(batches):
        impl = (_reference, _core)[i % 2]  # hop between implementations at every batch boundary
        interrupted = impl.WindowAggTable.restore(interrupted.snapshot())
        interrupted.add(*batch)
        out.append(fired_rows(interrupted.fire(i * 1000 - 1)))
        interrupted.purge(i * 1000 - 1)
    assert out == out_straight
    assert_snapshots_equal(_core.WindowAggTable.restore(interrupted.snapshot()).snapshot(), straight.snapshot())


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=impl_ids)
def test_restore_accepts_windows_in_any_order(impl):
    seed = 11
    print("seed", seed)
    rng = np.random.default_rng(seed)
    t = _core.WindowAggTable(1000, 500, 2)
    t.add(rng.integers(0, 300, 2000), rng.integers(-3, 3, 2000) * 1000, rng.normal(size=(2000, 2)))
    t.fire(-1)  # some windows emitted, some dirty
    t.add(rng.integers(0, 300, 200), rng.integers(-3, 3, 200) * 1000, rng.normal(size=(200, 2)))
    canonical = t.snapshot()
    shuffled = dict(canonical)
    order = rng.permutation(len(canonical["key_ids"]))
    for name in ("key_ids", "starts", "counts", "sums", "mins", "maxs", "emitted", "dirty"):
        shuffled[name] = canonical[name][order]
    restored = impl.WindowAggTable.restore(shuffled)
    assert_snapshots_equal(restored.snapshot(), canonical)
    assert fired_rows(restored.fire(INT64_MAX)) == fired_rows(t.fire(INT64_MAX))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=impl_ids)
def test_snapshot_unordered_holds_the_snapshot_state(impl):
    t = impl.WindowAggTable(10, 0, 1)
    add(t, [5, 1, 3, 1, 5], [20, 0, 10, 10, 20], [1.0, 2.0, 3.0, 4.0, 5.0])
    t.fire(9)  # window (1, 0) emitted
    unordered = t.snapshot_unordered()
    canonical = t.snapshot()
    rows = lambda s: sorted(  # noqa: E731
        zip(s["starts"].tolist(), s["key_ids"].tolist(), s["counts"].tolist(), s["sums"].tolist(),
            s["mins"].tolist(), s["maxs"].tolist(), s["emitted"].tolist(), s["dirty"].tolist())
    )
    assert rows(unordered) == rows(canonical)
    assert {k: unordered[k] for k in ("size", "lateness", "n_values")} == {"size": 10, "lateness": 0, "n_values": 1}
    for other in IMPLEMENTATIONS:
        assert_snapshots_equal(other.WindowAggTable.restore(unordered).snapshot(), canonical)
    partial = t.snapshot_unordered(mins=False, maxs=False)
    assert partial["mins"] is None and partial["maxs"] is None
    assert sorted(zip(partial["starts"].tolist(), partial["key_ids"].tolist(), partial["sums"].tolist())) == sorted(
        zip(canonical["starts"].tolist(), canonical["key_ids"].tolist(), canonical["sums"].tolist()))
    assert t.snapshot_unordered(sums=False)["sums"] is None


def test_snapshot_unordered_is_a_copy_that_later_adds_do_not_change():
    t = _core.WindowAggTable(10, 0, 1)
    add(t, [1, 2], [0, 0], [1.0, 2.0])
    unordered = t.snapshot_unordered()
    add(t, [1, 3], [0, 0], [5.0, 6.0])
    assert unordered["counts"].tolist() == [1, 1] and unordered["key_ids"].tolist() == [1, 2]
    assert unordered["sums"].ravel().tolist() == [1.0, 2.0]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=impl_ids)
def test_memory_shrinks_after_purge(impl):
    n = 20_000 if impl is _core else 5_000
    t = impl.WindowAggTable(10, 0, 1)
    t.add(np.arange(n), np.zeros(n, dtype=np.int64), np.ones((n, 1)))
    t.add(np.array([0]), np.array([100]), np.ones((1, 1)))
    grown = t.nbytes
    t.fire(9)
    assert t.purge(9) == n
    assert len(t) == 1
    assert t.nbytes < grown / 10
    assert fired_rows(t.fire(INT64_MAX)) == [(0, 100, 110, 1, [1.0], [1.0], [1.0])]


def test_one_million_windows_round_trip(partitioned):
    seed = 11
    print("seed", seed)
    rng = np.random.default_rng(seed)
    n = 1_000_000
    keys = np.arange(n, dtype=np.int64) % 1000
    starts = (np.arange(n, dtype=np.int64) // 1000) * 1000
    perm = rng.permutation(n)
    vals = rng.normal(size=(n, 1))
    t = _core.WindowAggTable(1000, 0, 1)
    t.add(keys[perm], starts[perm], vals[perm])
    assert len(t) == n
    snap = t.snapshot()
    np.testing.assert_array_equal(snap["starts"], starts)
    np.testing.assert_array_equal(snap["key_ids"], keys)
    np.testing.assert_array_equal(snap["sums"][:, 0], vals[:, 0])
    restored = _core.WindowAggTable.restore(snap)
    assert_snapshots_equal(restored.snapshot(), snap)
    half = int(starts[n // 2]) + 999
    a, b = t.fire(half), restored.fire(half)
    assert_fired_equal(a, b)
    assert len(a.key_ids) == n // 2 + 1000
    assert t.purge(half) == restored.purge(half) == n // 2 + 1000
    assert_fired_equal(t.fire(INT64_MAX), restored.fire(INT64_MAX))


def test_benchmark_shaped_batch_matches_numpy_groupby(partitioned):
    seed = 3
    print("seed", seed)
    rng = np.random.default_rng(seed)
    n = 200_000
    keys = rng.integers(0, 1000, n)
    starts = rng.integers(0, 200_000, n) // 1000 * 1000
    vals = rng.random(n)
    t = _core.WindowAggTable(1000, 0, 1)
    t.add(keys, starts, vals)
    fired = t.fire(INT64_MAX)
    groups, inverse = np.unique(starts * 1000 + keys, return_inverse=True)
    np.testing.assert_array_equal(fired.starts * 1000 + fired.key_ids, groups)
    np.testing.assert_array_equal(fired.counts, np.bincount(inverse))
    np.testing.assert_allclose(fired.sums[:, 0], np.bincount(inverse, weights=vals), rtol=1e-12)
    np.testing.assert_array_equal(fired.ends, fired.starts + 1000)


def test_large_batch_over_few_windows_does_not_keep_a_large_index(partitioned):
    n = 200_000
    t = _core.WindowAggTable(10, 0, 1)
    t.add(np.arange(n) % 7, np.zeros(n, dtype=np.int64), np.ones((n, 1)))
    assert len(t) == 7
    assert t.nbytes < 64 * 1024
    assert t.fire(9).counts.tolist() == [n // 7 + (1 if k < n % 7 else 0) for k in range(7)]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=impl_ids)
def test_fire_and_purge_with_nothing_due_leave_state_alone(impl):
    t = impl.WindowAggTable(1000, 500, 1)
    add(t, [1, 2], [0, 1000], [1.0, 2.0])
    before = t.snapshot()
    for w in (INT64_MIN, -1, 998):
        assert len(t.fire(w).key_ids) == 0
        assert t.purge(w) == 0
    assert_snapshots_equal(t.snapshot(), before)


@pytest.mark.parametrize("slide", [1000, 250, 7], ids=["on-size-grid", "sliding-grid", "off-grid"])
def test_fire_order_with_starts_on_and_off_the_size_grid(slide):
    """Starts on the size grid (tumbling), on a finer one (sliding) and off any grid: fire and
    snapshot order windows by their end bucket's rank and key id, exact in every case."""
    seed = 5
    print("seed", seed)
    rng = np.random.default_rng(seed)
    compiled = _core.WindowAggTable(1000, 0, 1)
    twin = _reference.WindowAggTable(1000, 0, 1)
    for step in range(3):
        n = 3000
        keys = rng.integers(0, 300, n)
        starts = rng.integers(-40, 40, n) * slide + step * 1000
        vals = rng.normal(size=(n, 1))
        compiled.add(keys, starts, vals)
        twin.add(keys, starts, vals)
        watermark = step * 10_000 - 1
        assert_fired_equal(compiled.fire(watermark), twin.fire(watermark))
        assert_snapshots_equal(compiled.snapshot(), twin.snapshot())
    assert_fired_equal(compiled.fire(INT64_MAX), twin.fire(INT64_MAX))


def test_tables_created_and_dropped_in_threads_reuse_memory_safely():
    """A dropped table's large entries block is parked for the next table (contents undefined,
    taken atomically): tables built one after another, from two threads at once, stay exact."""
    import threading

    seed = 17
    print("seed", seed)
    n = 150_000  # 150,000 windows: entries well above the 4 MiB mmap threshold
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(n) for _ in range(2)]  # one record per window, in random order
    batches = [(perm % 1500, perm // 1500 * 1000, rng.normal(size=n)) for perm in perms]
    failures = []

    def build_and_check(keys, starts, vals):
        try:
            for _ in range(3):
                t = _core.WindowAggTable(1000, 0, 1)
                t.add(keys, starts, vals)
                fired = t.fire(INT64_MAX)
                groups, inverse = np.unique(starts * 1500 + keys, return_inverse=True)
                np.testing.assert_array_equal(fired.starts * 1500 + fired.key_ids, groups)
                np.testing.assert_array_equal(fired.counts, np.bincount(inverse))
                np.testing.assert_array_equal(fired.sums[:, 0], vals[np.argsort(starts * 1500 + keys)])
                del t
        except AssertionError as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=build_and_check, args=batch) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[0]
