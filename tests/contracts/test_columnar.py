"""`CompiledContract.validate_columns` against `validate_many`: same valid positions, same values, same
invalid records and issues, on generated records (valid, mutated, malformed, escaped, unicode, big
numbers, exponents, duplicate/missing/unknown fields, odd whitespace)."""

from __future__ import annotations

import datetime
import json
import math

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.contracts import loads_contract
from engine.contracts.columnar import ColumnarValidation

CONTRACT = loads_contract("""
name: columnar-test
version: 1.0.0
fields:
  - {name: sid, type: string, constraints: {min_length: 3, max_length: 12, pattern: "^[a-z]+-[0-9]+$"}}
  - {name: n, type: integer, constraints: {ge: -1000, lt: 1000000000000, multiple_of: 3}}
  - {name: big, type: integer}
  - {name: x, type: float, constraints: {gt: -1000000, le: 1.0e+300}}
  - {name: f, type: float}
  - {name: cur, type: string, constraints: {allowed_values: [EUR, USD, "Z\\u00fcr"]}}
  - {name: state, type: enum, symbols: [NEW, PAID, SHIPPED]}
  - {name: ok, type: boolean}
  - {name: ts, type: timestamp}
  - {name: note, type: string, nullable: true, required: false}
  - {name: qty, type: integer, required: false, default: 1}
""")
STRICT = loads_contract("""
name: columnar-strict
version: 1.0.0
additional_fields: forbid
fields:
  - {name: a, type: integer, constraints: {allowed_values: [1, 2, 3]}}
  - {name: b, type: string, constraints: {pattern: "(?i)^ab"}}
  - {name: c, type: float, constraints: {multiple_of: 0.5}}
""")
NESTED = loads_contract("""
name: columnar-nested
version: 1.0.0
fields:
  - {name: id, type: integer}
  - {name: tags, type: array, items: {type: string}}
  - {name: when, type: date, required: false}
  - {name: ts, type: timestamp}
""")

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _expected(value):
    """A Struct attribute as the column holds it."""
    if value is msgspec.UNSET:
        return None
    if isinstance(value, datetime.datetime):
        return (value - _EPOCH) // datetime.timedelta(milliseconds=1)
    if isinstance(value, (list, dict, msgspec.Struct)):
        return msgspec.to_builtins(value, builtin_types=(datetime.date, datetime.datetime, bytes))
    return value


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return type(a) is type(b) and a == b


def check_against_validate_many(contract, records):
    compiled = contract.compile()
    got = compiled.validate_columns(records)
    want = compiled.validate_many(records)
    assert isinstance(got, ColumnarValidation)
    assert [(r.index, r.record, r.issues) for r in got.invalid] == [(r.index, r.record, r.issues) for r in want.invalid]
    bad = {r.index for r in want.invalid}
    assert got.index.dtype == np.int64
    assert got.index.tolist() == [i for i in range(len(records)) if i not in bad]
    assert len(got) == len(want.valid)
    assert list(got.columns) == [f.name for f in contract.fields]
    for f in contract.fields:
        col = got.columns[f.name]
        assert len(col) == len(want.valid)
        attr = f.name + "_" if f.name in ("from", "class") else f.name
        values = col.tolist()
        for row, struct in enumerate(want.valid):
            expected = _expected(getattr(struct, attr))
            assert _same(values[row], expected), (f.name, row, values[row], expected)
    return got


# ---- generated records ---------------------------------------------------------------------------
WS = st.sampled_from(["", "", "", " ", "  ", "\t", "\n", "\r\n", "\x0b", "\u00a0"])
JSON_NUMBER = st.from_regex(r"\A-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,22})?([eE][+-]?[0-9]{1,4})?\Z")


def _int_text():
    return st.one_of(
        st.integers(-1200, 1200).map(lambda v: str(v * 3)),
        st.integers(-(2**70), 2**70).map(str),
        st.integers(10**17, 10**19).map(str),
        st.sampled_from(["-0", "0", "01", "1.0", "3e2", "-", "999999999999999999", "-999999999999999999",
                         "9223372036854775807", "-9223372036854775808", "9223372036854775808", "true", "null",
                         '"3"', "[3]", "3 3", "+3", ".5"]),
    )


def _float_text():
    return st.one_of(
        JSON_NUMBER,
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.floats(-1e7, 1e7).map(lambda v: f"{v:.3f}"),
        st.sampled_from(["-0", "-0.0", "0.0", "1e400", "-1e400", "1e-400", "4.9e-324", "2.2250738585072014e-308",
                         "1.7976931348623157e308", "NaN", "Infinity", "1.", ".5", "1e", "1e+", "0.1e1", "00.1",
                         "9007199254740993", "9007199254740993.0", "123456789012345678901234567890",
                         "1.00000000000000011102230246251565404236316680908203125", "true", "null", '"1.5"']),
    )


def _string_text():
    return st.one_of(
        st.from_regex(r"\A[a-z]{1,6}-[0-9]{1,6}\Z").map(json.dumps),
        st.text(max_size=8).map(lambda s: json.dumps(s, ensure_ascii=False)),
        st.text(max_size=8).map(json.dumps),
        st.sampled_from(['"ab-1"', '"abc-\\u0031"', '"abc-1\\n"', '"ab\x01c-1"', '"abc-1', '"abc\\/-1"', "null",
                         "1", '"EUR"', '"USD"', '"Z\u00fcr"', '"Z\\u00fcr"', '"NEW"', '"PAID"', '"SHIPPED"',
                         '"\x7f"', '"a\u2028b"']),
    )


def _value_text(name):
    if name in ("n", "big", "ts", "qty"):
        return st.one_of(_int_text(), st.sampled_from(['"2023-11-14T22:13:20.123456Z"', '"2023-11-14T22:13:20"',
                                                       '"1969-12-31T23:59:59.9995+00:00"']))
    if name in ("x", "f"):
        return _float_text()
    if name == "ok":
        return st.sampled_from(["true", "false", "True", "1", "null", "tru", "falsey"])
    return _string_text()


@st.composite
def record_bytes(draw, contract=CONTRACT):
    names = [f.name for f in contract.fields]
    order = draw(st.permutations(names))
    entries = []
    for name in order:
        if draw(st.integers(0, 20)) == 0:
            continue  # missing
        key = json.dumps(name)
        if draw(st.integers(0, 40)) == 0:
            key = '"\\u00' + format(ord(name[0]), "02x") + name[1:] + '"'  # the same key, escaped
        entries.append((key, draw(_value_text(name))))
    if draw(st.integers(0, 15)) == 0:
        entries.append(('"extra"', draw(st.sampled_from(["1", '"x"', "[1, {\"a\": null}]", "{}", "nul"]))))
    if entries and draw(st.integers(0, 20)) == 0:
        entries.append(draw(st.sampled_from(entries)))  # a duplicate key
    parts = [draw(WS) + k + draw(WS) + ":" + draw(WS) + v + draw(WS) for k, v in entries]
    text = draw(WS) + "{" + ",".join(parts) + ("" if entries else draw(WS)) + "}" + draw(WS)
    data = text.encode("utf-8", "surrogatepass")
    mutation = draw(st.integers(0, 25))
    if mutation == 0 and data:
        cut = draw(st.integers(0, len(data) - 1))
        data = data[:cut]
    elif mutation == 1:
        pos = draw(st.integers(0, len(data)))
        data = data[:pos] + bytes([draw(st.integers(0, 255))]) + data[pos:]
    elif mutation == 2:
        data = data + b"x"
    return data


@st.composite
def valid_record_bytes(draw):
    """A record that is valid for CONTRACT, formatted by json.dumps (the common case)."""
    rec = {
        "sid": draw(st.from_regex(r"\A[a-z]{1,4}-[0-9]{1,6}\Z")),
        "n": 3 * draw(st.integers(-333, 10**6)),
        "big": draw(st.integers(-(2**63), 2**63 - 1)),
        "x": draw(st.floats(-999_999, 1e300)),
        "f": draw(st.floats(allow_nan=False, allow_infinity=False)),
        "cur": draw(st.sampled_from(["EUR", "USD"])),
        "state": draw(st.sampled_from(["NEW", "PAID", "SHIPPED"])),
        "ok": draw(st.booleans()),
        "ts": draw(st.integers(0, 2**41)),
        "note": draw(st.text(alphabet="abc xyz", max_size=5)),
        "qty": draw(st.integers(-5, 5)),
    }
    if draw(st.integers(0, 3)) == 0:  # a field the contract does not name (it allows them)
        rec["extra"] = draw(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=4),
                                      st.floats(allow_nan=False, allow_infinity=False),
                                      st.lists(st.integers(), max_size=2)))
    return json.dumps(rec).encode()


batches = st.lists(st.one_of(record_bytes(), valid_record_bytes()), max_size=12)


@settings(max_examples=120, deadline=None)
@given(batches)
def test_generated_batches_agree_with_validate_many(records):
    check_against_validate_many(CONTRACT, records)


@settings(max_examples=100, deadline=None)
@given(st.lists(valid_record_bytes(), min_size=1, max_size=10))
def test_valid_records_agree_with_validate_many(records):
    got = check_against_validate_many(CONTRACT, records)
    assert len(got) == len(records)
    assert got.codes["state"].dtype == np.int32
    assert [("NEW", "PAID", "SHIPPED")[c] for c in got.codes["state"].tolist()] == got.columns["state"].tolist()


SINGLE = {
    kind: loads_contract(f"{{name: one-{kind}, version: 1.0.0, fields: [{{name: v, type: {kind}}}]}}")
    for kind in ("integer", "float", "string", "boolean", "timestamp")
}


@pytest.mark.parametrize("kind, values", [
    ("float", _float_text()), ("integer", _int_text()), ("timestamp", _int_text()), ("string", _string_text()),
    ("boolean", _value_text("ok")),
])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_single_values_agree_with_msgspec(kind, values, data):
    """One field per record, so most records reach the scanner: number conversion (fast path and
    strtod), integer limits and string escapes are compared value by value with msgspec."""
    texts = data.draw(st.lists(values, min_size=1, max_size=8))
    records = [b'{"v":' + t.encode("utf-8", "surrogatepass") + b"}" for t in texts]
    check_against_validate_many(SINGLE[kind], records)


def test_common_records_take_the_fast_path():
    from engine.kernels import scan_flat_json

    compiled = CONTRACT.compile()
    rec = {"sid": "ab-1", "n": 3, "big": -5, "x": 1.25, "f": 2e-5, "cur": "EUR", "state": "PAID", "ok": True,
           "ts": 7, "note": "n", "qty": 2}
    records = [json.dumps(rec).encode(), json.dumps({**rec, "extra": [1, {"a": None}]}).encode(),
               json.dumps({**rec, "extra": None, "more": "x"}).encode(), json.dumps(rec, indent=2).encode(),
               json.dumps({**rec, "extra": ["\u00e9"]}, ensure_ascii=False).encode()]
    compiled.validate_columns(records[:1])
    plan = compiled._columnar
    cols = [np.empty(len(records), dtype=c.dtype) for c in plan.columns]
    status = np.empty(len(records), dtype=np.uint8)
    scan_flat_json(records, plan.flat_fields, cols, status, plan.allow_unknown)
    assert status.tolist() == [0, 0, 0, 0, 1]  # nested unknown values are skipped, non-ASCII is not
    check_against_validate_many(CONTRACT, records)


def test_column_types():
    got = CONTRACT.compile().validate_columns([
        b'{"sid":"ab-1","n":3,"big":5,"x":1.5,"f":2,"cur":"EUR","state":"PAID","ok":true,"ts":7,"note":"hi","qty":2}',
        b'{"sid":"ab-2","n":6,"big":5,"x":1,"f":-0,"cur":"USD","state":"NEW","ok":false,"ts":8,"note":null}',
    ])
    dtypes = {name: col.dtype for name, col in got.columns.items()}
    assert dtypes == {"sid": object, "n": np.int64, "big": np.int64, "x": np.float64, "f": np.float64,
                      "cur": object, "state": object, "ok": np.bool_, "ts": np.int64, "note": object,
                      "qty": np.int64}
    assert got.columns["note"].tolist() == ["hi", None]
    assert got.columns["qty"].tolist() == [2, 1]  # the default
    assert math.copysign(1.0, got.columns["f"][1]) == 1.0  # msgspec reads the integer -0 as 0.0
    assert got.records()[0]["state"] == "PAID"


@pytest.mark.parametrize("text, expected", [
    (b'"2023-11-14T22:13:20.123456Z"', 1_700_000_000_123),
    (b'"1969-12-31T23:59:59.9995+00:00"', -1),  # rounds down to the millisecond
    (b"1700000000000", 1_700_000_000_000),
])
def test_timestamps_become_epoch_ms(text, expected):
    contract = loads_contract("{name: t, version: 1.0.0, fields: [{name: ts, type: timestamp}]}")
    got = check_against_validate_many(contract, [b'{"ts": ' + text + b"}"])
    assert got.columns["ts"].tolist() == [expected]
    assert got.columns["ts"].dtype == np.int64


def test_integers_beyond_int64_make_an_object_column():
    contract = loads_contract("{name: t, version: 1.0.0, fields: [{name: n, type: integer}]}")
    got = check_against_validate_many(contract, [b'{"n": 1}', b'{"n": 99999999999999999999999}', b'{"n": "x"}'])
    assert got.columns["n"].dtype == object
    assert got.columns["n"].tolist() == [1, 99999999999999999999999]
    assert got.index.tolist() == [0, 1]


def test_duplicate_keys_and_escapes_follow_msgspec():
    got = check_against_validate_many(CONTRACT, [
        b'{"sid":"ab-1","n":3,"n":6,"big":5,"x":1.5,"f":2,"cur":"EUR","state":"PAID","ok":true,"ts":7}',
        b'{"sid":"ab-\\u0031","n":3,"big":5,"x":1.5,"f":2,"cur":"Z\\u00fcr","state":"PAID","ok":true,"ts":7}',
    ])
    assert got.columns["n"].tolist() == [6, 3]
    assert got.columns["sid"].tolist() == ["ab-1", "ab-1"]
    assert got.columns["cur"].tolist() == ["EUR", "Z\u00fcr"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(
    st.builds(lambda a, b, c: json.dumps({"a": a, "b": b, "c": c}).encode(),
              st.sampled_from([1, 2, 3, 4, 2.0]), st.sampled_from(["abc", "ABx", "xab", "Ab"]),
              st.sampled_from([0.5, 1, 0.25, -1.5, 1e300])),
    record_bytes(STRICT),
), max_size=15))
def test_constraints_the_scanner_leaves_to_msgspec(records):
    check_against_validate_many(STRICT, records)


def test_contract_the_scanner_cannot_read_falls_back():
    records = [b'{"id": 1, "tags": ["a", "b"], "when": "2024-01-02", "ts": 5}', b'{"id": 2, "tags": [], "ts": 6}',
               b'{"id": "x", "tags": [], "ts": 6}', {"id": 3, "tags": ["c"], "ts": 7}, b"not json"]
    got = check_against_validate_many(NESTED, records)
    assert NESTED.compile()._columnar.flat_fields is None
    assert got.index.tolist() == [0, 1, 3]
    assert got.columns["tags"].tolist() == [["a", "b"], [], ["c"]]
    assert got.columns["when"].tolist() == [datetime.date(2024, 1, 2), None, None]
    assert got.columns["id"].dtype == np.int64 and got.columns["ts"].tolist() == [5, 6, 7]
    assert [r.index for r in got.invalid] == [2, 4]


def test_mixed_inputs_and_empty_batches():
    compiled = CONTRACT.compile()
    empty = compiled.validate_columns([])
    assert len(empty) == 0 and empty.invalid == [] and empty.columns["n"].dtype == np.int64
    rec = {"sid": "ab-1", "n": 3, "big": 5, "x": 1.5, "f": 2.0, "cur": "EUR", "state": "PAID", "ok": True, "ts": 7}
    got = check_against_validate_many(CONTRACT, [json.dumps(rec), rec, json.dumps(rec).encode(), 17, None])
    assert got.index.tolist() == [0, 1, 2]
    got = compiled.validate_columns(iter([json.dumps(rec).encode()]))
    assert len(got) == 1


def test_columns_feed_a_batch_whose_records_match_validate_many_dicts():
    from engine.batch import Batch

    compiled = CONTRACT.compile()
    rec = {"sid": "ab-1", "n": 3, "big": 5, "x": 1.5, "f": 2.0, "cur": "EUR", "state": "PAID", "ok": True, "ts": 7,
           "note": "hi", "qty": 4}
    records = [json.dumps(rec).encode(), json.dumps({**rec, "x": -2e6}).encode(),
               json.dumps({**rec, "state": "SHIPPED", "ok": False}).encode()]
    got = compiled.validate_columns(records)
    ts = got.columns["ts"]
    batch = Batch(ts, np.full(len(ts), -(2**63), dtype=np.int64), columns=got.columns)
    assert batch.records == compiled.validate_many(records, output="dict").valid
