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
    offset: object = 0
    key: object = None


INT64 = st.integers(-(2**63), 2**63 - 1)
OBJECT = st.one_of(st.none(), st.binary(max_size=4))


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(INT64, OBJECT, INT64, OBJECT), max_size=20))
def test_gathers_int64_arrays_then_lists_in_name_order(impl, rows):
    records = [Record(*row) for row in rows]
    offsets, timestamps, values, keys = impl.gather_attributes(records, ("offset", "timestamp"), ("value", "key"))
    for ints, attribute in ((offsets, "offset"), (timestamps, "timestamp")):
        assert ints.dtype == np.int64 and ints.shape == (len(rows),)
        assert ints.tolist() == [getattr(r, attribute) for r in records]
    for objects, attribute in ((values, "value"), (keys, "key")):
        assert type(objects) is list and len(objects) == len(rows)
        assert all(got is getattr(r, attribute) for got, r in zip(objects, records))


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_only_ints_or_only_objects(impl):
    records = [Record(5, "a", 1), Record(6, "b", 2)]
    (timestamps,) = impl.gather_attributes(records, ("timestamp",), ())
    assert timestamps.tolist() == [5, 6]
    values, same = impl.gather_attributes(records, (), ("value", "value"))
    assert values == same == ["a", "b"]
    assert [a.tolist() for a in impl.gather_attributes([], ("offset", "timestamp"), ())] == [[], []]


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_numpy_ints_are_ints(impl):
    ints, objects = impl.gather_attributes([Record(np.int32(-3), "a"), Record(np.uint64(7), "b")], ("timestamp",), ("value",))
    assert ints.tolist() == [-3, 7] and objects == ["a", "b"]


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
@pytest.mark.parametrize("records, names, error, message", [
    ((Record(1, "a"),), (("timestamp",), ("value",)), TypeError, "items must be a list"),
    ([Record(1, "a")], ("timestamp", ("value",)), TypeError, "int_names must be a tuple"),
    ([Record(1, "a")], (("",), ("value",)), TypeError, "int_names must hold non-empty strs"),
    ([Record(1, "a")], (("timestamp",), (3,)), TypeError, "object_names must hold non-empty strs"),
    ([Record(1, "a")], ((), ()), ValueError, "at least one attribute name"),
    ([Record(1, "a"), Record(1.5, "b")], (("timestamp",), ("value",)), TypeError, "float"),
    ([Record(1, "a"), Record(None, "b")], (("timestamp",), ("value",)), TypeError, "NoneType"),
    ([Record(1, "a"), Record(True, "b")], (("timestamp",), ("value",)), TypeError, "item 1: timestamp must be an int"),
    ([Record(2**63, "a")], (("timestamp",), ("value",)), OverflowError, "item 0: timestamp = 9223372036854775808 is out"),
    # item by item: item 0's bad second attribute is found before item 1's bad first one
    ([Record(1.5, "a", 0), Record(1, "b", None)], (("offset", "timestamp"), ()), TypeError, "float"),
    ([Record(1, "a")], (("partition",), ("value",)), AttributeError, "partition"),
    ([Record(1, "a")], (("timestamp",), ("headers",)), AttributeError, "headers"),
])
def test_bad_items_raise_clear_errors(impl, records, names, error, message):
    with pytest.raises(error, match=message):
        impl.gather_attributes(records, *names)


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(INT64, OBJECT, INT64, OBJECT), max_size=20), st.lists(OBJECT, max_size=3))
def test_appends_objects_to_given_lists(impl, rows, already):
    records = [Record(*row) for row in rows]
    values, keys = list(already), []
    (timestamps,) = impl.gather_attributes(records, ("timestamp",), ("value", "key"), append_to=(values, keys))
    assert timestamps.tolist() == [r.timestamp for r in records]
    assert values == already + [r.value for r in records] and keys == [r.key for r in records]


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_a_failed_append_leaves_the_lists_as_they_were(impl):
    values, keys = ["old"], []
    records = [Record(1, "a"), Record(2, "b"), Record(None, "c")]
    with pytest.raises(TypeError, match="NoneType"):
        impl.gather_attributes(records, ("timestamp",), ("value", "key"), append_to=(values, keys))
    assert values == ["old"] and keys == []


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
@pytest.mark.parametrize("append_to, error, message", [
    ([[]], TypeError, r"one list per object name \(2\)"),
    (([], ()), TypeError, "one list per object name"),
    ("ab", TypeError, "one list per object name"),
])
def test_bad_append_to_raises(impl, append_to, error, message):
    with pytest.raises(error, match=message):
        impl.gather_attributes([Record(1, "a")], ("timestamp",), ("value", "key"), append_to=append_to)


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_append_to_needs_distinct_lists(impl):
    same: list = []
    with pytest.raises(ValueError, match="distinct lists"):
        impl.gather_attributes([Record(1, "a")], ("timestamp",), ("value", "key"), append_to=(same, same))


class Odd:
    """Attributes a comprehension cannot spell as ``item.<name>``: a keyword, a non-identifier, and a
    non-ASCII identifier that the parser would normalise ("\ufb01" is the ligature "fi", NFKC "fi")."""

    def __init__(self, i):
        setattr(self, "class", i)
        setattr(self, "not-an-identifier", f"v{i}")
        setattr(self, "\ufb01", f"lig{i}")
        self.fi = "plain fi"


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_names_a_comprehension_cannot_spell_are_read_with_getattr(impl):
    items = [Odd(i) for i in range(3)]
    ints, odd, ligature, fi = impl.gather_attributes(items, ("class",), ("not-an-identifier", "\ufb01", "fi"))
    assert ints.tolist() == [0, 1, 2]
    assert odd == ["v0", "v1", "v2"] and ligature == ["lig0", "lig1", "lig2"] and fi == ["plain fi"] * 3


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_the_first_bad_item_is_reported_whichever_attribute_fails(impl):
    # item 0 has a bad int, item 1 lacks an object attribute: item by item, item 0's error comes first
    @dataclass
    class Partial:
        timestamp: object

    records = [Record(None, "a"), Partial(1)]
    with pytest.raises(TypeError, match="NoneType"):
        impl.gather_attributes(records, ("timestamp",), ("value",))
    records = [Partial(1), Record(None, "a")]  # now item 0's missing value comes first
    with pytest.raises(AttributeError, match="value"):
        impl.gather_attributes(records, ("timestamp",), ("value",))


class Shrinking:
    """An attribute whose code empties the list of items being gathered."""

    def __init__(self, items):
        self.items = items

    @property
    def value(self):
        self.items.clear()
        return "v"


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_items_changed_by_an_attribute_never_crash(impl):
    items: list = []
    items.extend(Shrinking(items) for _ in range(3))
    try:
        result = impl.gather_attributes(items, (), ("value",))
    except RuntimeError as exc:  # the compiled loop refuses to read past the list's new end
        assert "changed size" in str(exc)
    else:  # a value per item read before or after the change, never more than there were
        (values,) = result
        assert values == ["v"] * len(values) and len(values) <= 3
