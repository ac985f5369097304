"""Window assignment kernels (`tumbling_starts`, `sliding_windows`): compiled vs twin, and by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import _core, _reference

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
IMPLS = [_core, _reference]

# timestamps: ordinary ones, negative ones and ones within reach of the int64 limits
timestamps = st.one_of(
    st.integers(-5_000, 5_000),
    st.integers(INT64_MIN, INT64_MIN + 3_000),
    st.integers(INT64_MAX - 3_000, INT64_MAX),
    st.integers(INT64_MIN, INT64_MAX),
)
ts_lists = st.lists(timestamps, max_size=40)
sizes = st.one_of(st.integers(1, 100), st.integers(1, 2**62), st.just(INT64_MAX),
                  st.integers(0, 62).map(lambda b: 2**b), st.integers(2, 62).map(lambda b: 2**b - 1))


def outcome(fn, *args):
    """The result of ``fn(*args)`` or ``(exception type, message)`` when it raises."""
    try:
        return ("ok", fn(*args))
    except (ValueError, TypeError, MemoryError) as exc:
        return ("raised", type(exc), str(exc))


def assert_same_outcome(a, b):
    assert a[0] == b[0], (a, b)
    if a[0] == "raised":
        assert a[1:] == b[1:]
        return
    ra, rb = a[1], b[1]
    if isinstance(ra, tuple):
        for x, y in zip(ra, rb, strict=True):
            assert x.dtype == y.dtype == np.int64
            np.testing.assert_array_equal(x, y)
    else:
        assert ra.dtype == rb.dtype == np.int64
        np.testing.assert_array_equal(ra, rb)


# --- differential properties ------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(ts=ts_lists, size=sizes, data=st.data())
def test_tumbling_compiled_equals_twin(ts, size, data):
    offset = data.draw(st.integers(-size + 1, size - 1), label="offset")
    arr = np.array(ts, dtype=np.int64)
    assert_same_outcome(outcome(_core.tumbling_starts, arr, size, offset),
                        outcome(_reference.tumbling_starts, arr, size, offset))


@settings(max_examples=200, deadline=None)
@given(ts=st.lists(st.integers(-10**6, 10**6), max_size=40),
       size=st.one_of(st.integers(1, 100), st.integers(1, 2**40)), data=st.data())
def test_tumbling_matches_definition_and_batch_splits(ts, size, data):
    offset = data.draw(st.integers(-size + 1, size - 1), label="offset")
    cut = data.draw(st.integers(0, len(ts)), label="cut")
    arr = np.array(ts, dtype=np.int64)
    whole = _core.tumbling_starts(arr, size, offset)
    for t, start in zip(ts, whole.tolist()):
        assert start == offset + (t - offset) // size * size
        assert start <= t < start + size
    parts = np.concatenate([_core.tumbling_starts(arr[:cut], size, offset),
                            _core.tumbling_starts(arr[cut:], size, offset)])
    np.testing.assert_array_equal(parts, whole)


@st.composite
def sliding_params(draw):
    slide = draw(st.one_of(st.integers(1, 50), st.integers(1, 2**61)))
    # at most ~12 windows per record, so the twin stays fast; size need not be a multiple of slide
    size = draw(st.integers(1, min(INT64_MAX, slide * 12)))
    offset = draw(st.integers(-slide + 1, slide - 1))
    return size, slide, offset


@settings(max_examples=200, deadline=None)
@given(ts=ts_lists, params=sliding_params())
def test_sliding_compiled_equals_twin(ts, params):
    size, slide, offset = params
    arr = np.array(ts, dtype=np.int64)
    assert_same_outcome(outcome(_core.sliding_windows, arr, size, slide, offset),
                        outcome(_reference.sliding_windows, arr, size, slide, offset))


@settings(max_examples=200, deadline=None)
@given(ts=st.lists(st.integers(-10_000, 10_000), max_size=30),
       size=st.integers(1, 60), slide=st.integers(1, 25), data=st.data())
def test_sliding_matches_brute_force_and_batch_splits(ts, size, slide, data):
    offset = data.draw(st.integers(-slide + 1, slide - 1), label="offset")
    cut = data.draw(st.integers(0, len(ts)), label="cut")
    arr = np.array(ts, dtype=np.int64)
    rows, starts = _core.sliding_windows(arr, size, slide, offset)
    expected = [(i, s) for i, t in enumerate(ts)
                for s in range(t - size + 1, t + 1) if (s - offset) % slide == 0]
    assert list(zip(rows.tolist(), starts.tolist())) == expected
    rows_a, starts_a = _core.sliding_windows(arr[:cut], size, slide, offset)
    rows_b, starts_b = _core.sliding_windows(arr[cut:], size, slide, offset)
    np.testing.assert_array_equal(np.concatenate([rows_a, rows_b + cut]), rows)
    np.testing.assert_array_equal(np.concatenate([starts_a, starts_b]), starts)


# --- hand-computed cases (SEMANTICS.md: Windows) -----------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS, ids=["compiled", "twin"])
def test_tumbling_floor_semantics_for_negative_timestamps(impl):
    ts = np.array([-1, 0, 999, 1000, -1000, -1001], dtype=np.int64)
    assert impl.tumbling_starts(ts, 1000).tolist() == [-1000, 0, 0, 1000, -1000, -2000]


@pytest.mark.parametrize("impl", IMPLS, ids=["compiled", "twin"])
def test_tumbling_offsets(impl):
    ts = np.array([2, 3, 12, 13, -8], dtype=np.int64)
    assert impl.tumbling_starts(ts, 10, offset=3).tolist() == [-7, 3, 3, 13, -17]
    # a negative offset is the same grid as offset + size
    assert impl.tumbling_starts(ts, 10, offset=-7).tolist() == [-7, 3, 3, 13, -17]


@pytest.mark.parametrize("impl", IMPLS, ids=["compiled", "twin"])
def test_sliding_multiple_and_non_multiple(impl):
    rows, starts = impl.sliding_windows(np.array([7, 5, 4]), 10, 5)
    assert list(zip(rows.tolist(), starts.tolist())) == [(0, 0), (0, 5), (1, 0), (1, 5), (2, -5), (2, 0)]
    # size 10, slide 3: ts 0 is in starts -9 -6 -3 0; ts 1 no longer in -9 (window [-9, 1) excludes 1)
    rows, starts = impl.sliding_windows(np.array([0, 1]), 10, 3)
    assert list(zip(rows.tolist(), starts.tolist())) == [(0, -9), (0, -6), (0, -3), (0, 0),
                                                          (1, -6), (1, -3), (1, 0)]
    # with an offset: starts are 1 mod 3
    assert impl.sliding_windows(np.array([0]), 10, 3, 1)[1].tolist() == [-8, -5, -2]


@pytest.mark.parametrize("impl", IMPLS, ids=["compiled", "twin"])
def test_sliding_with_gaps_when_size_below_slide(impl):
    rows, starts = impl.sliding_windows(np.array([0, 1, 2, 4, 5, 6, 7]), 2, 5)
    assert rows.tolist() == [0, 1, 4, 5]
    assert starts.tolist() == [0, 0, 5, 5]


@pytest.mark.parametrize("impl", IMPLS, ids=["compiled", "twin"])
def test_empty_batches(impl):
    empty = np.array([], dtype=np.int64)
    assert impl.tumbling_starts(empty, 5).dtype == np.int64
    assert len(impl.tumbling_starts(empty, 5)) == 0
    rows, starts = impl.sliding_windows(empty, 10, 5)
    assert rows.dtype == starts.dtype == np.int64 and len(rows) == len(starts) == 0
    assert len(impl.tumbling_starts([], 5)) == 0


@pytest.mark.parametrize("impl", IMPLS, ids=["compiled", "twin"])
def test_windows_at_the_int64_limits(impl):
    # [INT64_MAX - 1, INT64_MAX) fits; [INT64_MAX, INT64_MAX + 1) does not
    assert impl.tumbling_starts(np.array([INT64_MAX - 1]), 1).tolist() == [INT64_MAX - 1]
    with pytest.raises(ValueError, match=r"ts\[1\]=9223372036854775807 cannot be assigned a tumbling window"):
        impl.tumbling_starts(np.array([0, INT64_MAX]), 1)
    # INT64_MIN is 2 above a multiple of 10, so its window would start below INT64_MIN
    with pytest.raises(ValueError, match=r"ts\[0\]=-9223372036854775808 .*\[-9223372036854775810, "):
        impl.tumbling_starts(np.array([INT64_MIN]), 10)
    assert impl.tumbling_starts(np.array([INT64_MIN]), 2**62).tolist() == [INT64_MIN]
    assert impl.tumbling_starts(np.array([INT64_MIN + 5]), 10, offset=-6).tolist() == [INT64_MIN + 2]
    with pytest.raises(ValueError, match=r"ts\[0\]=.*sliding windows"):
        impl.sliding_windows(np.array([INT64_MIN + 5]), 10, 5)
    assert impl.sliding_windows(np.array([INT64_MIN + 5]), 5, 5)[1].tolist() == [INT64_MIN + 3]
    with pytest.raises(ValueError, match=r"ts\[0\]=9223372036854775803 .*\[9223372036854775794, 9223372036854775813\)"):
        impl.sliding_windows(np.array([INT64_MAX - 4]), 10, 3)


# --- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS, ids=["compiled", "twin"])
def test_bad_arguments_raise_clear_errors(impl):
    ts = np.array([1, 2, 3], dtype=np.int64)
    with pytest.raises(TypeError, match="ts must be an int64 array, got dtype float64"):
        impl.tumbling_starts(np.array([1.5]), 10)
    with pytest.raises(ValueError, match="ts must be a 1-D array"):
        impl.sliding_windows(np.zeros((2, 2), dtype=np.int64), 10, 5)
    with pytest.raises(ValueError, match="does not fit in int64"):
        impl.tumbling_starts(np.array([2**64 - 1], dtype=np.uint64), 10)
    with pytest.raises(ValueError, match="size must be > 0, got 0"):
        impl.tumbling_starts(ts, 0)
    with pytest.raises(ValueError, match="size must be > 0, got -5"):
        impl.sliding_windows(ts, -5, 1)
    with pytest.raises(ValueError, match="slide must be > 0, got 0"):
        impl.sliding_windows(ts, 10, 0)
    with pytest.raises(TypeError, match="size must be an int"):
        impl.tumbling_starts(ts, 10.0)
    with pytest.raises(TypeError, match="size must be an int"):
        impl.tumbling_starts(ts, True)
    with pytest.raises(ValueError, match="-size < offset < size"):
        impl.tumbling_starts(ts, 10, 10)
    with pytest.raises(ValueError, match="-size < offset < size"):
        impl.tumbling_starts(ts, 10, -10)
    with pytest.raises(ValueError, match="-slide < offset < slide"):
        impl.sliding_windows(ts, 10, 5, 5)
    with pytest.raises(ValueError, match="size=.* does not fit in int64"):
        impl.tumbling_starts(ts, 2**63)


@pytest.mark.parametrize("impl", IMPLS, ids=["compiled", "twin"])
def test_other_integer_dtypes_and_timedelta_durations_are_accepted(impl):
    import datetime

    ts = np.array([1500, 2500], dtype=np.int32)
    assert impl.tumbling_starts(ts, datetime.timedelta(seconds=1)).tolist() == [1000, 2000]
    assert impl.tumbling_starts([1500, 2500], 1000).tolist() == [1000, 2000]
    # a read-only, non-contiguous view is fine too
    base = np.arange(20, dtype=np.int64)[::2]
    base.flags.writeable = False
    assert impl.tumbling_starts(base, 5).tolist() == [0, 0, 0, 5, 5, 10, 10, 10, 15, 15]


@settings(max_examples=200, deadline=None)
@given(base=timestamps, width=st.sampled_from([10, 2**31, 2**32 - 2, 2**32 - 1, 2**32, 2**33]),
       size=st.one_of(st.integers(1, 1_000), st.integers(2**32 - 3, 2**32 + 3), st.integers(1, 2**34)),
       data=st.data())
def test_tumbling_batches_spanning_up_to_and_past_2_32(base, width, size, data):
    # the compiled kernel has a fast path for batches spanning < 2**32 ms with size < 2**32; probe its
    # edges (span exactly 2**32 - 1 or 2**32, size 2**32 - 1 or 2**32) against the twin
    offset = data.draw(st.integers(-size + 1, size - 1), label="offset")
    extra = data.draw(st.lists(st.integers(0, width), max_size=20), label="extra")
    ts = np.array([base, *[min(INT64_MAX, base + e) for e in extra], min(INT64_MAX, base + width)], dtype=np.int64)
    assert_same_outcome(outcome(_core.tumbling_starts, ts, size, offset),
                        outcome(_reference.tumbling_starts, ts, size, offset))
