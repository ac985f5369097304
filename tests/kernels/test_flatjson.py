"""`scan_flat_json`: the compiled scanner against its pure-Python twin, and argument checks."""

from __future__ import annotations

from typing import Union

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import _core, _reference
from engine._kernel_types import FlatField
from engine.contracts.patterns import compile_dfa
from tests.contracts.test_columnar import record_bytes, valid_record_bytes

IMPLS = [_core, _reference]
IDS = ["compiled", "twin"]
_DFA = compile_dfa("^[a-z]+-[0-9]+$")
FIELDS = [
    FlatField("sid", "string", min_length=3, max_length=12, dfa=(_DFA.table, _DFA.accepting, _DFA.start)),
    FlatField("n", "int", ge=-1000, lt=10**12, multiple_of=3),
    FlatField("big", "int"),
    FlatField("x", "float", gt=-1e6, le=1e300),
    FlatField("f", "float"),
    FlatField("cur", "enum", symbols=("EUR", "USD", "Z\u00fcr")),
    FlatField("state", "enum", symbols=("NEW", "PAID", "SHIPPED")),
    FlatField("ok", "bool"),
    FlatField("ts", "timestamp"),
    FlatField("note", "string"),
    FlatField("qty", "int"),
]
DTYPES = {"int": np.int64, "timestamp": np.int64, "float": np.float64, "bool": np.bool_, "string": object,
          "enum": np.int32}


def scan(impl, records, fields=FIELDS, allow_unknown=False):
    columns = [np.empty(len(records), dtype=DTYPES[f.kind]) for f in fields]
    status = np.full(len(records), 7, dtype=np.uint8)
    accepted = impl.scan_flat_json(records, fields, columns, status, allow_unknown)
    assert accepted == int(np.count_nonzero(status == 0))
    assert set(status.tolist()) <= {0, 1}
    return status, [c[:accepted].tolist() for c in columns]  # the k-th accepted record fills row k


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(record_bytes(), valid_record_bytes(), st.binary(max_size=20)), max_size=12), st.booleans())
def test_compiled_matches_twin(records, allow_unknown):
    status, values = scan(_core, records, allow_unknown=allow_unknown)
    status_t, values_t = scan(_reference, records, allow_unknown=allow_unknown)
    assert status.tolist() == status_t.tolist()
    for got, want in zip(values, values_t):
        assert [repr(v) for v in got] == [repr(v) for v in want]  # repr: -0.0 differs from 0.0


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_reads_values_and_refuses_the_unusual(impl):
    fields = [FlatField("a", "int", ge=0), FlatField("b", "float"), FlatField("c", "string", max_length=3),
              FlatField("d", "enum", symbols=("X", "Y")), FlatField("e", "bool")]
    records = [
        b'{"a": 1, "b": 2.5, "c": "hi", "d": "Y", "e": true}',
        b' {"e":false,"d":"X","c":"","b":-0,"a":0} ',
        b'{"a": 1, "b": 2.5, "c": "hi", "d": "Y"}',  # missing e
        b'{"a": 1, "b": 2.5, "c": "hi", "d": "Y", "e": true, "z": 1}',  # unknown z
        b'{"a": -1, "b": 2.5, "c": "hi", "d": "Y", "e": true}',  # a < 0
        b'{"a": 1, "b": 2.5, "c": "h\\u0069", "d": "Y", "e": true}',  # escape
        b'{"a": 1, "b": 2.5, "c": "long", "d": "Y", "e": true}',  # too long
        b'{"a": 1, "b": 1e999, "c": "hi", "d": "Y", "e": true}',  # overflows
        b'{"a": 1, "b": 2.5, "c": "hi", "d": "Z", "e": true}',  # not a symbol
        b'{"a": 1, "b": 2.5, "c": "hi", "d": "Y", "e": true}x',  # trailing garbage
        "{}",  # not bytes
    ]
    status, values = scan(impl, records, fields)
    assert status.tolist() == [0, 0] + [1] * 9
    assert values == [[1, 0], [2.5, 0.0], ["hi", ""], [1, 0], [True, False]]
    # unknown keys are skipped when allowed, with plain scalar values or arrays and objects of them (up to
    # 32 levels); anything the scanner cannot vouch for inside them is not
    head = b'{"a": 1, "b": 2.5, "c": "hi", "d": "Y", "e": true, "z": '
    extra = [records[3], b'{"z": null, "a": 1, "b": 2.5, "y": "s", "c": "hi", "d": "Y", "e": true, "x": -1e5}',
             head + b'[1]}', head + b'{"p": [ {}, [], {"q": [null, "s", -0.5e3, false]} ], "r" : 2 }}',
             head + b"[" * 32 + b"]" * 32 + b"}",
             head + b'"\\n"}', head + b'["\\n"]}', head + b'{"\\u0070": 1}}', head + b'[1,]}', head + b'[1 2]}',
             head + b'{"p" 1}}', head + b'{"p": 1,}}', head + b'{1: 1}}', head + b'[01]}', head + b'[1e999]}',
             head + b'["\xc3\xa9"]}', head + b"[" * 33 + b"]" * 33 + b"}", head + b"[[1]}", head + b"[1]]}"]
    status, values = scan(impl, extra, fields, allow_unknown=True)
    assert status.tolist() == [0] * 5 + [1] * 14
    assert values[0] == [1] * 5
    for record in extra[2:5]:  # msgspec agrees: it skips those values
        assert msgspec.json.decode(record)["a"] == 1


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_number_and_key_kinds_fill_a_pair_of_columns(impl):
    fields = [FlatField("k", "key"), FlatField("x", "number")]
    records = [b'{"k": 7, "x": 3}', b'{"k": "a", "x": 1.0}', b'{"x": -0, "k": -12}', b'{"k": "", "x": 1e2}',
               b'{"k": 1, "x": -0.0}', b'{"k": 999999999999999999, "x": -999999999999999999}',
               b'{"k": 1, "x": 1000000000000000000}', b'{"k": 1.5, "x": 1}', b'{"k": null, "x": 1}',
               b'{"k": true, "x": 1}', b'{"k": 1, "x": "1"}', b'{"k": "\\u0061", "x": 1}', b'{"k": 1, "x": true}']
    n = len(records)
    columns = [(np.empty(n, np.int64), np.empty(n, object)), (np.empty(n, np.int64), np.empty(n, np.float64))]
    status = np.empty(n, np.uint8)
    accepted = impl.scan_flat_json(records, fields, columns, status)
    assert status.tolist() == [0] * 6 + [1] * 7 and accepted == 6
    second = impl.FLAT_SECOND_TYPE
    assert second == -(2**63)
    (key_ints, key_strs), (x_ints, x_floats) = [(a[:accepted].tolist(), b[:accepted].tolist()) for a, b in columns]
    assert key_ints == [7, second, -12, second, 1, 999999999999999999]
    assert key_strs == [None, "a", None, "", None, None]
    assert x_ints == [3, second, 0, second, second, -999999999999999999]
    assert [repr(v) for v in x_floats] == ["3.0", "1.0", "0.0", "100.0", "-0.0", "-1e+18"]


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_number_and_key_columns_must_be_pairs(impl):
    records = [b'{"k": 1}']
    status = np.empty(1, np.uint8)
    with pytest.raises(TypeError, match="pair of arrays"):
        impl.scan_flat_json(records, [FlatField("k", "key")], [np.empty(1, np.int64)], status)
    with pytest.raises(TypeError, match="1-D float64"):
        impl.scan_flat_json(records, [FlatField("k", "number")], [(np.empty(1, np.int64), np.empty(1, object))],
                            status)


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
@pytest.mark.parametrize("change, error, message", [
    (lambda r, f, c, s: ((r,), f, c, s), TypeError, "records must be a list"),
    (lambda r, f, c, s: (r, [], [], s), ValueError, "at least one field"),
    (lambda r, f, c, s: (r, f, c[:1], s), ValueError, "one array per field"),
    (lambda r, f, c, s: (r, [("a", "int")] * 2, c, s), TypeError, "FlatField"),
    (lambda r, f, c, s: (r, [FlatField("a", "int")] * 2, c, s), ValueError, "given twice"),
    (lambda r, f, c, s: (r, [FlatField("a", "decimal"), f[1]], c, s), ValueError, "kind must be one of"),
    (lambda r, f, c, s: (r, f, [c[0].astype(np.int32), c[1]], s), TypeError, "column of field 'a' must be a 1-D int64"),
    (lambda r, f, c, s: (r, f, [c[0][:1], c[1]], s), TypeError, "of 2 rows"),
    (lambda r, f, c, s: (r, [FlatField("a", "int", ge=0.5), f[1]], c, s), TypeError,
     "ge of an int field must be an int"),
    (lambda r, f, c, s: (r, [FlatField("a", "int", min_length=1), f[1]], c, s), ValueError, "string fields only"),
    (lambda r, f, c, s: (r, [FlatField("a", "int", multiple_of=0), f[1]], c, s), ValueError, "multiple_of"),
    (lambda r, f, c, s: (r, [f[0], FlatField("b", "string", ge=1)], c, s), ValueError, "bounds apply"),
    (lambda r, f, c, s: (r, [f[0], FlatField("b", "string", dfa=(np.zeros(3, np.int64), [True], 0))], c, s),
     ValueError, "256 entries per state"),
    (lambda r, f, c, s: (r, [f[0], FlatField("b", "enum", symbols=())], [c[0], np.empty(2, np.int32)], s),
     ValueError, "non-empty tuple"),
    (lambda r, f, c, s: (r, f, c, s.astype(np.int64)), TypeError, "status must be a 1-D uint8"),
    (lambda r, f, c, s: (r, f, c, s, "yes"), TypeError, "allow_unknown must be a bool"),
])
def test_bad_arguments_raise_clear_errors(impl, change, error, message):
    records = [b'{"a": 1, "b": "x"}', b"{}"]
    fields = [FlatField("a", "int"), FlatField("b", "string")]
    columns = [np.empty(2, dtype=np.int64), np.empty(2, dtype=object)]
    status = np.empty(2, dtype=np.uint8)
    with pytest.raises(error, match=message):
        impl.scan_flat_json(*change(records, fields, columns, status))


# ---- number and key kinds against msgspec --------------------------------------------------------------
number_literals = st.one_of(
    st.integers(-(10**20), 10**20).map(lambda v: str(v).encode()),
    st.floats(allow_nan=False, allow_infinity=False).map(msgspec.json.encode),
    st.sampled_from([b"-0", b"0", b"1.0", b"1e2", b"1E+2", b"-0.0", b"0e0", b"1.5e-3", b"-1e-7", b"01", b"1.",
                     b".5", b"-", b"1e", b"+1", b"2e308", b"1e-400", b"4.9e-324", b"9007199254740993.0",
                     b"123456789012345678901234567890.5", b"999999999999999999", b"-999999999999999999",
                     b"1000000000000000000", b"9223372036854775807", b"-9223372036854775808",
                     b"18446744073709551616", b"0.1e1", b"100e-2", b"1e22", b"1e23"]),
)
other_literals = st.one_of(
    st.text(max_size=4).map(msgspec.json.encode),
    st.sampled_from([b'"a\\"b"', b'"\\u00e9"', b'"\xc3\xa9"', b'"\xff"', b"null", b"true", b"false", b"[1]",
                     b'{"a": [1, {"b": null}]}', b"[]", b"{}", b'[1, "x\\n"]', b"[1,]", b"nul", b'"']),
)
raw_values = st.one_of(number_literals, other_literals)
spaces = st.sampled_from([b"", b" ", b"\n", b"\t ", b"\r"])


@st.composite
def key_number_records(draw):
    """Objects with a "k" and an "x" (sometimes missing or twice) and unknown fields, as raw JSON text."""
    names = draw(st.lists(st.sampled_from([b"k", b"x", b"u", b"v", b"\\u006b"]), max_size=5))
    if draw(st.booleans()):
        names = [b"k", b"x"] + names[:2]
        names = draw(st.permutations(names))
    s = draw(spaces)
    likely = {b"k": st.one_of(st.integers(-(10**19), 10**19).map(lambda v: str(v).encode()),
                              st.text("ab\u00e9", max_size=3).map(msgspec.json.encode), raw_values),
              b"x": number_literals}
    members = [s + b'"' + name + b'"' + draw(spaces) + b":" + draw(spaces) + draw(likely.get(name, raw_values))
               + draw(spaces) for name in names]
    return draw(spaces) + b"{" + b",".join(members) + s + b"}" + draw(spaces)


class KeyNumber(msgspec.Struct):
    k: Union[int, str]
    x: Union[int, float]


_KEY_NUMBER = msgspec.json.Decoder(KeyNumber)


@settings(max_examples=200, deadline=None)
@given(st.lists(key_number_records(), min_size=1, max_size=10))
def test_number_and_key_kinds_read_what_msgspec_reads(records):
    fields = [FlatField("k", "key"), FlatField("x", "number")]
    results = []
    for impl in IMPLS:
        n = len(records)
        columns = [(np.empty(n, np.int64), np.empty(n, object)), (np.empty(n, np.int64), np.empty(n, np.float64))]
        status = np.empty(n, np.uint8)
        accepted = impl.scan_flat_json(records, fields, columns, status, True)
        values = []
        for row in range(accepted):
            key = columns[0][1][row] if columns[0][0][row] == impl.FLAT_SECOND_TYPE else int(columns[0][0][row])
            ints, floats = columns[1][0][row], columns[1][1][row]
            number = float(floats) if ints == impl.FLAT_SECOND_TYPE else int(ints)
            if type(number) is int:
                assert repr(float(floats)) == repr(float(number))  # the float64 column holds every value
            values.append((key, number))
        results.append((status.tolist(), [repr(v) for v in values]))
        expected = []
        for record, st_ in zip(records, status.tolist()):
            if st_ == 0:  # accepted: msgspec decodes it to the same values (and types)
                row = _KEY_NUMBER.decode(record)
                expected.append((row.k, row.x))
        assert [repr(v) for v in values] == [repr(v) for v in expected]
    assert results[0] == results[1]  # the compiled kernel and its twin agree


# ---- the compiled kernel caches the checked plan of a fields sequence: it must never go stale -----------
@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_a_fields_list_changed_in_place_is_read_anew(impl):
    records = [b'{"a": 1}', b'{"a": "x"}']
    fields = [FlatField("a", "int")]
    status = np.empty(2, np.uint8)
    column = np.empty(2, np.int64)
    assert impl.scan_flat_json(records, fields, [column], status) == 1 and status.tolist() == [0, 1]
    fields[0] = FlatField("a", "string")  # the same list object, another field
    strings = np.empty(2, object)
    assert impl.scan_flat_json(records, fields, [strings], status) == 1 and status.tolist() == [1, 0]
    assert strings[0] == "x"
    with pytest.raises(TypeError, match="column of field 'a' must be a 1-D object"):
        impl.scan_flat_json(records, fields, [column], status)  # the old column no longer fits


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_a_reused_fields_list_still_checks_every_call(impl):
    records = [b'{"k": 1, "x": 2.5}']
    fields = [FlatField("k", "key"), FlatField("x", "number")]
    good = [(np.empty(1, np.int64), np.empty(1, object)), (np.empty(1, np.int64), np.empty(1, np.float64))]
    status = np.empty(1, np.uint8)
    assert impl.scan_flat_json(records, fields, good, status, True) == 1
    assert impl.scan_flat_json(records, fields, good, status, np.True_) == 1  # numpy bools are bools
    # other accepted forms: pair columns as lists, a tuple of columns
    assert impl.scan_flat_json(records, fields, ([list(good[0]), good[1]]), status) == 1
    bad_calls = [
        ((records, fields, [good[0], (good[1][0], np.empty(1, np.float32))], status), TypeError, "1-D float64"),
        ((records, fields, [good[0], (good[1][0], np.empty(2, np.float64))], status), TypeError, "of 1 rows"),
        ((records * 2, fields, [(np.empty(2, np.int64), np.empty(4, object)[::2]), (np.empty(2, np.int64),
          np.empty(2, np.float64))], np.empty(2, np.uint8)), ValueError, "C-contiguous"),
        ((records, fields, good, np.empty(1, np.int8)), TypeError, "status must be a 1-D uint8"),
        ((records, fields, good[:1], status), ValueError, "one array per field"),
        ((tuple(records), fields, good, status), TypeError, "records must be a list"),
        ((records, fields, good, status, 1), TypeError, "allow_unknown must be a bool"),
    ]
    readonly = np.empty(1, np.float64)
    readonly.flags.writeable = False
    bad_calls.append(((records, fields, [good[0], (good[1][0], readonly)], status), ValueError, "writeable"))
    for args, error, message in bad_calls:
        with pytest.raises(error, match=message):
            impl.scan_flat_json(*args)
    assert impl.scan_flat_json(records, fields, good, status) == 1  # and the good call still works


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_a_pattern_table_changed_between_calls_is_checked_again(impl):
    table = _DFA.table.copy()
    fields = [FlatField("s", "string", dfa=(table, _DFA.accepting, _DFA.start))]
    status = np.empty(1, np.uint8)
    assert impl.scan_flat_json([b'{"s": "ab-12"}'], fields, [np.empty(1, object)], status) == 1
    table[0] = 10**6  # no longer a state id: refused, never followed
    with pytest.raises(ValueError, match="state ids"):
        impl.scan_flat_json([b'{"s": "ab-12"}'], fields, [np.empty(1, object)], status)


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_many_distinct_fields_sequences(impl):
    status = np.empty(1, np.uint8)
    for i in range(150):  # more than the compiled kernel caches
        fields = (FlatField(f"f{i}", "int", ge=i),)
        column = np.empty(1, np.int64)
        assert impl.scan_flat_json([b'{"f%d": %d}' % (i, i)], fields, [column], status) == 1 and column[0] == i
        assert impl.scan_flat_json([b'{"f%d": %d}' % (i, i - 1)], fields, [column], status) == 0
