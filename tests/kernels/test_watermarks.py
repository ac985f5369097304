"""Watermark kernels (`WatermarkTracker`, `late_mask`, `combine_watermarks`): compiled vs twin, by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import _core, _reference

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
IMPLS = [_core, _reference]
IDS = ["compiled", "twin"]

timestamps = st.one_of(
    st.integers(-1_000, 1_000),
    st.integers(INT64_MIN, INT64_MIN + 100),
    st.integers(INT64_MAX - 100, INT64_MAX),
    st.integers(INT64_MIN, INT64_MAX),
)
delays = st.one_of(st.integers(0, 50), st.integers(0, INT64_MAX))


def split(values, cuts):
    """``values`` cut into consecutive batches at the (sorted, possibly repeated) positions ``cuts``."""
    bounds = [0, *sorted(c % (len(values) + 1) for c in cuts), len(values)]
    return [np.array(values[a:b], dtype=np.int64) for a, b in zip(bounds, bounds[1:])]


def per_record_rule(ts, delay):
    """SEMANTICS.md: the watermark before record i is max(ts[:i]) - delay - 1, INT64_MIN before any."""
    out = []
    for i in range(len(ts)):
        out.append(INT64_MIN if i == 0 else max(INT64_MIN, max(ts[:i]) - delay - 1))
    return out


# --- differential properties ------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(ts=st.lists(timestamps, max_size=60), delay=delays,
       cuts=st.lists(st.integers(0, 100), max_size=5), snap_at=st.integers(0, 6),
       restore_into=st.sampled_from(IMPLS))
def test_tracker_compiled_equals_twin_and_the_per_record_rule(ts, delay, cuts, snap_at, restore_into):
    batches = split(ts, cuts)
    compiled = _core.WatermarkTracker(delay)
    twin = _reference.WatermarkTracker(delay)
    got_compiled, got_twin = [], []
    for b, batch in enumerate(batches):
        if b == snap_at:
            # snapshot -> restore (possibly into the other implementation) -> continue
            snap = compiled.snapshot()
            assert snap == twin.snapshot()
            compiled = restore_into.WatermarkTracker.restore(snap)
        got_compiled.extend(compiled.advance(batch).tolist())
        got_twin.extend(twin.advance(batch).tolist())
        assert compiled.current == twin.current
        assert compiled.max_ts == twin.max_ts
    expected = per_record_rule(ts, delay)
    assert got_compiled == expected
    assert got_twin == expected
    assert compiled.snapshot() == twin.snapshot()
    # the watermark never goes backwards, including across the end of input
    assert got_compiled == sorted(got_compiled)
    before = compiled.current
    compiled.end_input()
    assert compiled.current == INT64_MAX >= before


@settings(max_examples=200, deadline=None)
@given(pairs=st.lists(st.tuples(timestamps, timestamps), max_size=40),
       lateness=st.one_of(st.integers(0, 50), st.integers(0, INT64_MAX)))
def test_late_mask_compiled_equals_twin(pairs, lateness):
    wm = np.array([p[0] for p in pairs], dtype=np.int64)
    ends = np.array([p[1] for p in pairs], dtype=np.int64)
    got = _core.late_mask(wm, ends, lateness)
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got, _reference.late_mask(wm, ends, lateness))
    expected = [w >= min(INT64_MAX, max(INT64_MIN, e - 1) + lateness) for w, e in pairs]
    assert got.tolist() == expected


@settings(max_examples=200, deadline=None)
@given(inputs=st.lists(st.tuples(timestamps, st.booleans()), max_size=12))
def test_combine_watermarks_compiled_equals_twin(inputs):
    wm = np.array([w for w, _ in inputs], dtype=np.int64)
    idle = np.array([i for _, i in inputs], dtype=np.bool_)
    got = _core.combine_watermarks(wm, idle)
    assert got == _reference.combine_watermarks(wm, idle)
    assert type(got) is int
    active = [w for w, i in inputs if not i]
    if active:
        assert got == min(active)
    elif inputs:
        assert got == max(w for w, _ in inputs)
    else:
        assert got == INT64_MIN


# --- hand-computed cases (SEMANTICS.md: Watermarks) ---------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_bounded_out_of_orderness_by_hand(impl):
    tracker = impl.WatermarkTracker(5)
    assert tracker.max_ts == INT64_MIN and tracker.current == INT64_MIN and not tracker.ended
    # record 0 sees nothing; record 1 sees max 10 -> 4; record 3 sees max 20 -> 14
    assert tracker.advance(np.array([10, 3, 20, 15])).tolist() == [INT64_MIN, 4, 4, 14]
    assert tracker.current == 14 and tracker.max_ts == 20
    # a later batch continues from the running max
    assert tracker.advance(np.array([16, 30])).tolist() == [14, 14]
    assert tracker.current == 24
    assert tracker.advance(np.array([], dtype=np.int64)).tolist() == []
    assert tracker.current == 24


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_end_input_is_final(impl):
    tracker = impl.WatermarkTracker(0)
    tracker.advance(np.array([5]))
    assert tracker.current == 4
    tracker.end_input()
    assert tracker.ended and tracker.current == INT64_MAX
    # records after the end of input see INT64_MAX (they are late), and the end stays final
    assert tracker.advance(np.array([100, 1])).tolist() == [INT64_MAX, INT64_MAX]
    assert tracker.current == INT64_MAX
    restored = impl.WatermarkTracker.restore(tracker.snapshot())
    assert restored.ended and restored.current == INT64_MAX


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_watermark_saturates(impl):
    tracker = impl.WatermarkTracker(10)
    tracker.advance(np.array([INT64_MIN + 3]))
    assert tracker.current == INT64_MIN  # INT64_MIN + 3 - 10 - 1 saturates
    huge = impl.WatermarkTracker(INT64_MAX)
    huge.advance(np.array([INT64_MAX]))
    assert huge.current == -1
    huge.advance(np.array([0]))
    assert huge.current == -1
    zero = impl.WatermarkTracker(0)
    zero.advance(np.array([INT64_MIN]))
    assert zero.current == INT64_MIN


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_snapshot_is_canonical(impl):
    tracker = impl.WatermarkTracker(7)
    tracker.advance(np.array([3, 9]))
    snap = tracker.snapshot()
    assert snap == {"delay": 7, "max_ts": 9, "ended": False}
    assert [type(v) for v in snap.values()] == [int, int, bool]


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_late_mask_by_hand(impl):
    # window [0, 10): fires at W >= 9; with lateness 2 a record is late once W >= 11
    wm = np.array([8, 9, 10, 11], dtype=np.int64)
    ends = np.full(4, 10, dtype=np.int64)
    assert impl.late_mask(wm, ends, 0).tolist() == [False, True, True, True]
    assert impl.late_mask(wm, ends, 2).tolist() == [False, False, False, True]
    # saturation: end - 1 + lateness never wraps around
    assert impl.late_mask(np.array([INT64_MAX, INT64_MAX - 1]), np.array([INT64_MAX, INT64_MAX]), 5).tolist() == [True, False]
    assert impl.late_mask(np.array([INT64_MIN]), np.array([INT64_MIN]), 0).tolist() == [True]
    assert impl.late_mask(np.array([INT64_MIN]), np.array([INT64_MIN + 1]), 0).tolist() == [True]
    assert impl.late_mask(np.array([INT64_MIN]), np.array([INT64_MIN + 2]), 0).tolist() == [False]


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_combine_watermarks_by_hand(impl):
    assert impl.combine_watermarks(np.array([5, 3, 9]), np.array([False, False, False])) == 3
    assert impl.combine_watermarks(np.array([5, 3, 9]), np.array([False, True, False])) == 5
    assert impl.combine_watermarks(np.array([5, 3, 9]), np.array([True, True, True])) == 9
    assert impl.combine_watermarks(np.array([], dtype=np.int64), np.array([], dtype=np.bool_)) == INT64_MIN
    assert impl.combine_watermarks(np.array([INT64_MIN, INT64_MAX]), np.array([False, False])) == INT64_MIN


# --- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_bad_arguments_raise_clear_errors(impl):
    with pytest.raises(ValueError, match="delay must be >= 0, got -1"):
        impl.WatermarkTracker(-1)
    with pytest.raises(TypeError, match="delay must be an int"):
        impl.WatermarkTracker(1.5)
    tracker = impl.WatermarkTracker(0)
    with pytest.raises(TypeError, match="ts must be an int64 array, got dtype float64"):
        tracker.advance(np.array([1.0]))
    with pytest.raises(ValueError, match="ts must be a 1-D array"):
        tracker.advance(np.zeros((1, 2), dtype=np.int64))
    assert tracker.current == INT64_MIN  # a refused batch changes nothing
    with pytest.raises(ValueError, match="watermarks=2, window_ends=1"):
        impl.late_mask(np.array([1, 2]), np.array([1]), 0)
    with pytest.raises(ValueError, match="lateness must be >= 0, got -1"):
        impl.late_mask(np.array([1]), np.array([1]), -1)
    with pytest.raises(TypeError, match="window_ends must be an int64 array"):
        impl.late_mask(np.array([1]), np.array(["x"]), 0)
    with pytest.raises(TypeError, match="idle must be a bool array, got dtype int64"):
        impl.combine_watermarks(np.array([1]), np.array([0]))
    with pytest.raises(ValueError, match="watermarks=1, idle=2"):
        impl.combine_watermarks(np.array([1]), np.array([True, False]))
    with pytest.raises(ValueError, match="missing 'max_ts'"):
        impl.WatermarkTracker.restore({"delay": 1, "ended": False})
    with pytest.raises(TypeError, match="expects a dict snapshot"):
        impl.WatermarkTracker.restore([1, 2])


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_pickle_round_trip(impl):
    import pickle

    tracker = impl.WatermarkTracker(3)
    tracker.advance(np.array([7, 2]))
    copy = pickle.loads(pickle.dumps(tracker))
    assert type(copy) is impl.WatermarkTracker
    assert copy.snapshot() == tracker.snapshot()
    assert copy.advance(np.array([1])).tolist() == [3]
