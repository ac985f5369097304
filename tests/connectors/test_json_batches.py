"""Whole-batch JSON decoding (connectors.json_batches) and the Kafka sink's columnar JSON encoding:
each must give exactly what the per-message path gives, or refuse the batch."""

from __future__ import annotations

import contextlib
from typing import Union

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.json_batches import JsonColumnDecoder, _column, decode_lines_exactly
from tests.kernels.test_flatjson import number_literals, spaces
from tests.kernels.test_flatjson import raw_values as raw_json_values

ANY = msgspec.json.Decoder()


def per_message(values: list) -> list | None:
    """The reference: decode each value alone; None when any fails."""
    try:
        return [ANY.decode(v) for v in values]
    except (msgspec.DecodeError, TypeError):
        return None


@pytest.mark.parametrize(
    "values",
    [
        [b'{"a":1}', b'{"a":1},{"a":2}'],  # two values fused into one message
        [b'"abc', b'def"', b"1,2"],  # a string split over two messages, made up for by a fused one
        [b'{"a":1}', b"", b'{"a":2}'],  # an empty value is an empty line, which decode_lines skips
        [b'{"a":1}', b" ", b'{"a":2}'],
        [b'{"a":\n1}', b'{"a":2}'],  # valid JSON with a newline inside: refused, never split
        [b'{"a":1}', None],  # a tombstone
        [b'{"a":1}', b"{not json"],
        [b'{"a":1}]', b'[{"a":2}'],
        [b'{"a":1} {"a":2}', b""],  # decode_lines reads whitespace-separated values: two from one message
        [b'{"a":1}', b'{"a":1}{"a":2}', b" "],
        [b'{"a":', b'1}', b'{"a":1} {"a":2}'],  # one object across two messages, made up for by a fused one
        [b'{"a":"\xff"}', b'{"a":1}'],  # invalid UTF-8: refused, not raised
    ],
)
def test_batches_that_could_shift_values_between_messages_are_refused(values):
    assert decode_lines_exactly(ANY, values) is None


def test_a_clean_batch_decodes_in_one_call():
    values = [b'{"user":1,"ts":5}', b'{"a":[1,2]}', b'{"b":{"c":"x"}}', b"{}"]
    assert decode_lines_exactly(ANY, values) == [{"user": 1, "ts": 5}, {"a": [1, 2]}, {"b": {"c": "x"}}, {}]
    assert decode_lines_exactly(ANY, []) == []


def test_values_other_than_one_object_each_are_left_to_the_per_message_path():
    """Only values that are each one JSON object can be proven to map one-to-one onto decoded elements."""
    for values in ([b'{"a":1}', b"[1,2]"], [b'"x"', b'{"a":1}'], [b"3.5"], [b' {"a":1}'], [b'{"a":1} ']):
        assert decode_lines_exactly(ANY, values) is None


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=6)
raw_values = st.one_of(
    json_values.map(msgspec.json.encode),
    json_values.map(lambda v: msgspec.json.format(msgspec.json.encode(v), indent=1)),  # with newlines
    st.sampled_from([b"", b" ", b"{", b"1,2", b'"', b"]", b"\n", b"\xff"]),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(raw_values, max_size=12))
def test_batch_decoding_equals_decoding_each_message_or_refuses(values):
    got = decode_lines_exactly(ANY, values)
    expected = per_message(values)
    if got is not None:
        assert got == expected
    elif expected is not None:  # refused although every value decodes: a newline, or not an object alone
        assert any(b"\n" in v or v[:1] != b"{" or v[-1:] != b"}" for v in values)


def test_columns_hold_only_the_projected_fields_with_their_types():
    decoder = JsonColumnDecoder({"user": "key", "amount": "number", "ts": "int"})
    columns = decoder.decode([b'{"user":"a","ts":5,"amount":1,"x":[1]}', b'{"amount":2.5,"user":7,"ts":6}'])
    assert set(columns) == {"user", "amount", "ts"}
    assert columns["user"].dtype == object and columns["user"].tolist() == ["a", 7]
    assert columns["amount"].dtype == np.float64 and columns["amount"].tolist() == [1.0, 2.5]
    assert columns["ts"].dtype == np.int64 and columns["ts"].tolist() == [5, 6]
    ints = decoder.decode([b'{"user":1,"ts":5,"amount":3}'])
    assert ints["user"].dtype == np.int64 and ints["amount"].dtype == np.int64


@pytest.mark.parametrize(
    "value",
    [
        b'{"ts":5,"amount":1}',  # missing key field
        b'{"user":[1],"ts":5,"amount":1}',  # unhashable key
        b'{"user":true,"ts":5,"amount":1}',  # a bool is not a key the columnar path keeps exactly
        b'{"user":"a","ts":5.5,"amount":1}',  # a float timestamp
        b'{"user":"a","ts":5,"amount":"1"}',  # a string number
        b'{"user":"a","ts":5,"amount":null}',
        b'{"user":"a","ts":99999999999999999999,"amount":1}',  # out of int64
        b'["user","ts","amount"]',
        b"{not json",
    ],
)
def test_a_batch_with_any_value_the_records_path_would_judge_is_refused(value):
    decoder = JsonColumnDecoder({"user": "key", "amount": "number", "ts": "int"})
    good = b'{"user":"a","ts":5,"amount":1}'
    assert decoder.decode([good, good]) is not None
    assert decoder.decode([good, value, good]) is None


def test_field_names_need_not_be_identifiers():
    decoder = JsonColumnDecoder({"user id": "key", "class": "number"})
    columns = decoder.decode([b'{"user id":"a","class":2}'])
    assert columns["user id"].tolist() == ["a"] and columns["class"].tolist() == [2]


def test_ints_beyond_int64_stay_exact_keys_and_send_numbers_to_the_records_path():
    huge = 2**64 + 1
    keys = JsonColumnDecoder({"user": "key"}).decode([b'{"user":%d}' % huge, b'{"user":1}'])
    assert keys["user"].dtype == object and keys["user"].tolist() == [huge, 1]
    assert JsonColumnDecoder({"amount": "number"}).decode([b'{"amount":%d}' % huge]) is None
    assert JsonColumnDecoder({"ts": "int"}).decode([b'{"ts":%d}' % huge]) is None


_MISSING = object()
field_values = st.one_of(
    st.integers(-(2**65), 2**65), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=3),
    st.booleans(), st.none(), st.lists(st.integers(), max_size=2), st.just(_MISSING),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(field_values, field_values), min_size=1, max_size=10))
def test_columns_equal_the_fields_of_the_decoded_records_or_the_batch_is_refused(pairs):
    objects = [{k: v for k, v in (("user", u), ("amount", a), ("page", "/x")) if v is not _MISSING} for u, a in pairs]
    values = [msgspec.json.encode(o) for o in objects]
    columns = JsonColumnDecoder({"user": "key", "amount": "number"}).decode(values)
    records = [ANY.decode(v) for v in values]
    fits = all(
        "user" in r and type(r["user"]) in (int, str) and "amount" in r and type(r["amount"]) in (int, float)
        for r in records
    )
    amounts = [r.get("amount") for r in records]
    if fits and all(abs(a) < 2**63 for a in amounts if type(a) is int):
        assert columns is not None
    if columns is None:
        return
    assert fits
    assert columns["user"].tolist() == [r["user"] for r in records]
    assert columns["amount"].tolist() == pytest.approx([r["amount"] for r in records])
    all_int = all(type(a) is int for a in amounts)
    assert columns["amount"].dtype == (np.int64 if all_int else np.float64)


# ---- JsonColumnDecoder against msgspec, value by value ---------------------------------------------------
def columns_by_msgspec(fields: dict[str, str], values: list) -> dict[str, np.ndarray] | None:
    """The oracle: each value decoded alone by msgspec into a Struct of the projected fields' types (other
    fields skipped), then made into columns by the same rule (`_column`); None when a value does not
    decode or a column does not fit."""
    types = {"int": int, "key": Union[int, str], "number": Union[int, float]}
    row = msgspec.defstruct("Row", [(f"f{i}", types[role]) for i, role in enumerate(fields.values())],
                            rename={f"f{i}": name for i, name in enumerate(fields)})
    decoder = msgspec.json.Decoder(row)
    try:
        rows = [decoder.decode(v) for v in values]
    except (msgspec.DecodeError, UnicodeDecodeError, TypeError):
        return None
    columns = {}
    for i, (name, role) in enumerate(fields.items()):
        columns[name] = _column([getattr(r, f"f{i}") for r in rows], role)
        if columns[name] is None:
            return None
    return columns


def assert_same_columns(got, expected):
    if expected is None:
        assert got is None
        return
    assert got is not None and list(got) == list(expected)
    for name in expected:
        assert got[name].dtype == expected[name].dtype, name
        assert [(type(v), repr(v)) for v in got[name].tolist()] == [(type(v), repr(v)) for v in expected[name].tolist()]


@contextlib.contextmanager
def scanning_with(impl_name: str):
    """Run JsonColumnDecoder over the compiled kernel or its pure-Python twin."""
    from connectors import json_batches
    from engine import _core, _reference

    original = json_batches.scan_flat_json
    json_batches.scan_flat_json = (_core if impl_name == "compiled" else _reference).scan_flat_json
    try:
        yield
    finally:
        json_batches.scan_flat_json = original


@st.composite
def projected_values(draw):
    """A value for the key ("k"), number ("x") and int ("t") fields with unknown ones, mostly objects."""
    likely = {
        b"k": st.one_of(st.integers(-(2**65), 2**65).map(lambda v: str(v).encode()),
                        st.text("ab\u00e9\"", max_size=3).map(msgspec.json.encode), raw_json_values),
        b"x": number_literals,
        b"t": st.one_of(st.integers(-(2**64), 2**64).map(lambda v: str(v).encode()), number_literals),
    }
    names = [b"k", b"x", b"t"] + draw(st.lists(st.sampled_from([b"u", b"k", b"x", b"\\u0074"]), max_size=2))
    names = draw(st.permutations(names))[: len(names) - draw(st.sampled_from([0, 0, 0, 0, 1]))]
    members = [b'"' + n + b'"' + draw(spaces) + b":" + draw(spaces) + draw(likely.get(n, raw_json_values)) for n in names]
    return draw(spaces) + b"{" + b",".join(members) + b"}" + draw(spaces)


uniform_batches = st.one_of(
    st.lists(projected_values(), min_size=1, max_size=8),
    # mostly well-formed rows: ints, or strs and floats among them
    st.lists(st.tuples(st.one_of(st.integers(-(2**63), 2**63), st.text(max_size=3)),
                       st.one_of(st.integers(-(2**63), 2**63), st.floats(allow_nan=False, allow_infinity=False)),
                       st.integers(-(2**63), 2**63 - 1))
             .map(lambda r: msgspec.json.encode({"u": [1], "k": r[0], "x": r[1], "t": r[2]})), min_size=1, max_size=8),
    st.just([]),
)


@pytest.mark.parametrize("impl", ["compiled", "twin"])
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=uniform_batches, none_at=st.integers(0, 20))
def test_column_decoder_equals_msgspec_value_by_value(impl, values, none_at):
    if none_at < len(values) and none_at % 3 == 0:
        values = values[:none_at] + [None] + values[none_at:]  # a tombstone
    with scanning_with(impl):
        for fields in ({"k": "key", "x": "number", "t": "int"}, {"x": "number"}, {"k": "key"}, {"t": "int"}):
            assert_same_columns(JsonColumnDecoder(fields).decode(values), columns_by_msgspec(fields, values))


@pytest.mark.parametrize("impl", ["compiled", "twin"])
def test_column_decoder_keeps_mixed_keys_and_takes_slow_records_in_order(impl):
    with scanning_with(impl):
        _check_mixed_keys_and_slow_records()


def _check_mixed_keys_and_slow_records():
    decoder = JsonColumnDecoder({"k": "key", "x": "number"})
    values = [b'{"k": 1, "x": 1}', b'{"k": "a", "x": 2}', b'{"k": 3, "x": 3}']
    columns = decoder.decode(values)
    assert columns["k"].dtype == object and columns["k"].tolist() == [1, "a", 3]
    assert columns["x"].dtype == np.int64 and columns["x"].tolist() == [1, 2, 3]
    # an escape, a duplicate key and a 19-digit int: msgspec decodes those rows, in their places
    values += [b'{"k": "\\u0062", "x": 4}', b'{"k": 5, "x": 0, "x": 5}', b'{"k": 6, "x": 9223372036854775807}']
    columns = decoder.decode(values)
    assert columns["k"].tolist() == [1, "a", 3, "b", 5, 6]
    assert columns["x"].dtype == np.int64 and columns["x"].tolist() == [1, 2, 3, 4, 5, 2**63 - 1]
    columns = decoder.decode(values + [b'{"k": 7, "x": 0.5}'])
    assert columns["x"].dtype == np.float64 and columns["x"].tolist() == [1, 2, 3, 4, 5, 2.0**63, 0.5]
