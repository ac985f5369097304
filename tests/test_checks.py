import datetime

import numpy as np
import pytest

from engine import _checks


def test_int64_column_converts_narrow_ints_and_refuses_floats():
    assert _checks.int64_column("ts", np.array([1, 2], dtype=np.int32)).dtype == np.int64
    with pytest.raises(TypeError, match="ts must be an int64 array, got dtype float64"):
        _checks.int64_column("ts", np.array([1.5]))
    with pytest.raises(ValueError, match="ts must be a 1-D array"):
        _checks.int64_column("ts", np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="does not fit in int64"):
        _checks.int64_column("ts", np.array([2**64 - 1], dtype=np.uint64))


def test_same_length_names_the_mismatch():
    with pytest.raises(ValueError, match="ts=2, key_ids=3"):
        _checks.same_length(ts=np.zeros(2), key_ids=np.zeros(3))


def test_durations_accept_timedelta_and_refuse_floats():
    assert _checks.positive("size", datetime.timedelta(seconds=1)) == 1000
    with pytest.raises(TypeError, match="size must be an int"):
        _checks.positive("size", 1.5)
    with pytest.raises(ValueError, match="size must be > 0, got 0"):
        _checks.positive("size", 0)
    with pytest.raises(ValueError, match="-size < offset < size"):
        _checks.offset_within("offset", 10, "size", 10)


def test_saturating_add_clamps():
    assert _checks.saturating_add(_checks.INT64_MAX, 5) == _checks.INT64_MAX
    assert _checks.saturating_add(_checks.INT64_MIN, -5) == _checks.INT64_MIN
