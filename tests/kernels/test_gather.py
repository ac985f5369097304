"""`gather_attributes`: the compiled loop against its pure-Python twin, and its errors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import _core, _reference

IMPLS = [_core, _reference]
IDS = ["compiled", "twin"]


@dataclass
class Record:
    timestamp: object
    value: object


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(-(2**63), 2**63 - 1), st.one_of(st.none(), st.binary(max_size=4))), max_size=20))
def test_gathers_an_int64_array_and_a_list(impl, pairs):
    records = [Record(ts, value) for ts, value in pairs]
    ints, objects = impl.gather_attributes(records, "timestamp", "value")
    assert ints.dtype == np.int64 and ints.shape == (len(pairs),)
    assert ints.tolist() == [ts for ts, _ in pairs]
    assert type(objects) is list and all(got is r.value for got, r in zip(objects, records))
    assert len(objects) == len(pairs)


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_numpy_ints_are_ints(impl):
    ints, objects = impl.gather_attributes([Record(np.int32(-3), "a"), Record(np.uint64(7), "b")], "timestamp", "value")
    assert ints.tolist() == [-3, 7] and objects == ["a", "b"]


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
@pytest.mark.parametrize("records, names, error, message", [
    ((Record(1, "a"),), ("timestamp", "value"), TypeError, "items must be a list"),
    ([Record(1, "a")], ("", "value"), TypeError, "int_name must be a non-empty str"),
    ([Record(1, "a")], ("timestamp", 3), TypeError, "object_name must be a non-empty str"),
    ([Record(1, "a"), Record(1.5, "b")], ("timestamp", "value"), TypeError, "float"),
    ([Record(1, "a"), Record(None, "b")], ("timestamp", "value"), TypeError, "NoneType"),
    ([Record(1, "a"), Record(True, "b")], ("timestamp", "value"), TypeError, "item 1: timestamp must be an int"),
    ([Record(2**63, "a")], ("timestamp", "value"), OverflowError, "item 0: timestamp = 9223372036854775808 is out"),
    ([Record(1, "a")], ("offset", "value"), AttributeError, "offset"),
    ([Record(1, "a")], ("timestamp", "key"), AttributeError, "key"),
])
def test_bad_items_raise_clear_errors(impl, records, names, error, message):
    with pytest.raises(error, match=message):
        impl.gather_attributes(records, *names)
