"""Compiled validators: typed decoding, error paths and values, batches that never raise, exports."""

from __future__ import annotations

import datetime
import io

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.contracts import ContractValidationError, compile_contract, loads_contract

from tests.contracts.strategies import contracts, invalid_value, record_strategy


def test_compiles_once_per_contract_version(orders):
    assert orders.compile() is compile_contract(orders)
    again = loads_contract(msgspec.json.encode(orders.to_dict()), "json")
    assert again.compile() is orders.compile()


def test_valid_json_decodes_to_typed_record_with_defaults(orders, order_record):
    v = orders.compile()
    rec = v.validate_json(msgspec.json.encode(order_record()))
    assert rec.order_id == "o-123" and rec.items[0].qty == 2
    assert rec.express is False  # default applied
    assert rec.note is msgspec.UNSET  # optional without default stays absent
    assert v.to_dict(rec) == {**order_record(), "express": False}


@pytest.mark.parametrize(
    ("overrides", "path", "value", "message"),
    [
        ({"user_id": 0}, "user_id", 0, ">= 1"),
        ({"amount": "12"}, "amount", "12", "Expected `float`"),
        ({"order_id": "o-"}, "order_id", "o-", "length >= 3"),
        ({"order_id": "o-abc"}, "order_id", "o-abc", "matching regex"),
        ({"currency": "JPY"}, "currency", "JPY", "Invalid enum value"),
        ({"state": "LOST"}, "state", "LOST", "Invalid enum value"),
        ({"items": []}, "items", [], "length >= 1"),
        ({"items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 0}]}, "items[1].qty", 0, ">= 1"),
        ({"items": [{"qty": 1}]}, "items[0].sku", None, "required field is missing"),
        ({"note": 5}, "note", 5, "Expected `str | null`"),
        ({"ts": "yesterday"}, "ts", "yesterday", "datetime"),
        ({"ts": "2024-01-01T00:00:00"}, "ts", "2024-01-01T00:00:00", "datetime")  # naive: no zone,
    ],
)
def test_errors_name_the_field_path_and_the_offending_value(orders, order_record, overrides, path, value, message):
    v = orders.compile()
    for validate, payload in ((v.validate_json, msgspec.json.encode(order_record(**overrides))),
                              (v.validate_python, order_record(**overrides))):
        with pytest.raises(ContractValidationError) as info:
            validate(payload)
        [issue] = info.value.issues
        assert (issue.path, issue.value) == (path, value)
        assert message in issue.message
        assert path in str(info.value) and "orders" in str(info.value)


def test_missing_required_field_and_unknown_fields(orders, order_record):
    v = orders.compile()
    rec = order_record()
    del rec["ts"]
    with pytest.raises(ContractValidationError, match="ts: required field is missing"):
        v.validate_python(rec)
    assert v.is_valid(order_record(extra="ignored"))  # additional_fields: allow (the default)
    closed = loads_contract("{name: t, version: 1.0.0, additional_fields: forbid, fields: [{name: a, type: integer}]}")
    with pytest.raises(ContractValidationError) as info:
        closed.compile().validate_json(b'{"a": 1, "b": 2}')
    assert (info.value.issues[0].path, info.value.issues[0].value) == ("b", 2)


def test_batch_never_raises_and_keeps_order(orders, order_record):
    v = orders.compile()
    good = [msgspec.json.encode(order_record(user_id=i + 1)) for i in range(5000)]
    batch = list(good)
    batch[10] = b'{"order_id": '  # truncated
    batch[4000] = msgspec.json.encode(order_record(amount=-3))
    batch.append(b"[1, 2]")
    batch.append(b"\xff\xfe")
    valid, invalid = v.validate_many(batch)
    assert [r.user_id for r in valid] == [i + 1 for i in range(5000) if i not in (10, 4000)]
    assert [d.index for d in invalid] == [10, 4000, 5000, 5001]
    assert "malformed JSON" in invalid[0].reason and invalid[0].record == b'{"order_id": '
    assert invalid[1].issues[0].path == "amount" and invalid[1].issues[0].value == -3
    assert "Expected `object`, got `array`" in invalid[2].reason
    assert "malformed JSON" in invalid[3].reason


def test_batch_of_mixed_inputs_and_dict_output(orders, order_record):
    v = orders.compile()
    batch = [order_record(), msgspec.json.encode(order_record(user_id=2)), "not json", 42,
             order_record(ts=datetime.datetime(2024, 5, 1, tzinfo=datetime.timezone.utc))]
    valid, invalid = v.validate_many(batch, output="dict")
    assert [r["user_id"] for r in valid] == [7, 2, 7]
    assert valid[2]["ts"] == datetime.datetime(2024, 5, 1, tzinfo=datetime.timezone.utc)
    assert [d.index for d in invalid] == [2, 3]
    assert "Expected `object`" in invalid[1].reason


def test_msgpack_records(orders, order_record):
    v = orders.compile()
    good = msgspec.msgpack.encode(order_record())
    bad = msgspec.msgpack.encode(order_record(state="nope"))
    assert v.validate_msgpack(good).state == "PAID"
    valid, invalid = v.validate_many([good, bad], encoding="msgpack")
    assert len(valid) == 1 and invalid[0].issues[0].path == "state" and invalid[0].issues[0].value == "nope"


def test_keyword_field_names_keep_their_wire_name():
    c = loads_contract("{name: t, version: 1.0.0, fields: [{name: class, type: string}, {name: from, type: integer}]}")
    rec = c.compile().validate_json(b'{"class": "a", "from": 3}')
    assert rec.class_ == "a" and getattr(rec, "from_") == 3
    assert c.compile().to_dict(rec) == {"class": "a", "from": 3}


def test_bytes_date_map_and_nullable_items():
    c = loads_contract("""
        name: t
        version: 1.0.0
        fields:
          - {name: blob, type: bytes, constraints: {max_length: 4}}
          - {name: day, type: date}
          - {name: counts, type: map, values: {type: integer, constraints: {ge: 0}}}
          - {name: tags, type: array, items: {type: string, nullable: true}}
    """)
    v = c.compile()
    rec = v.validate_json(b'{"blob": "AAEC", "day": "2024-02-29", "counts": {"a": 1}, "tags": ["x", null]}')
    assert rec.blob == b"\x00\x01\x02" and rec.day == datetime.date(2024, 2, 29) and rec.tags == ["x", None]
    with pytest.raises(ContractValidationError) as info:
        v.validate_json(b'{"blob": "AAECAwQF", "day": "2024-02-29", "counts": {}, "tags": []}')
    assert info.value.issues[0].path == "blob"
    with pytest.raises(ContractValidationError) as info:
        v.validate_json(b'{"blob": "", "day": "2024-02-29", "counts": {"a": -1}, "tags": []}')
    assert info.value.issues[0].path == "counts[<key>]"  # msgspec does not report map keys


# --------------------------------------------------------------------------------------- exports
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.data())
def test_json_schema_export_agrees_with_the_validator(data):
    import jsonschema

    contract = data.draw(contracts())
    schema = contract.to_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    checker = jsonschema.Draft202012Validator(schema)
    record = data.draw(record_strategy(contract.fields))
    assert checker.is_valid(record)
    target = data.draw(st.sampled_from(contract.fields))
    record[target.name] = invalid_value(target.type)
    assert not checker.is_valid(record)
    assert not contract.compile().is_valid(record)


@SETTINGS
@given(st.data())
def test_avro_export_parses_and_round_trips_valid_records(data):
    import fastavro

    contract = data.draw(contracts())
    schema = fastavro.parse_schema(contract.to_avro())
    record = data.draw(record_strategy(contract.fields))
    typed = contract.compile().validate_python(record)
    as_avro = _to_avro_datum(contract.compile().to_dict(typed), contract.fields)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, as_avro)
    buf.seek(0)
    back = fastavro.schemaless_reader(buf, schema)
    assert set(back) == {f.name for f in contract.fields}


def _to_avro_datum(rec, fields):
    out = {}
    for f in fields:
        value = rec.get(f.name)
        if f.type.type == "timestamp" and isinstance(value, int):
            value = datetime.datetime.fromtimestamp(value / 1000, tz=datetime.timezone.utc)
        if f.type.type == "object" and isinstance(value, dict):
            value = _to_avro_datum(value, f.type.fields)
        out[f.name] = value
    return out


def test_avro_export_shape(orders):
    avro = orders.to_avro()
    by_name = {f["name"]: f for f in avro["fields"]}
    assert avro["type"] == "record" and avro["name"] == "Orders"
    assert by_name["user_id"]["type"] == "long"
    assert by_name["state"]["type"] == {"type": "enum", "name": "OrdersState", "symbols": ["NEW", "PAID", "SHIPPED"]}
    assert by_name["note"]["type"] == ["null", "string"] and by_name["note"]["default"] is None
    assert by_name["express"] == {"name": "express", "type": "boolean", "default": False}
    assert by_name["ts"]["type"] == {"type": "long", "logicalType": "timestamp-millis"}
    assert by_name["items"]["type"]["items"]["type"] == "record"


# ------------------------------------------------------------------------ column-wise pattern checks
@pytest.mark.parametrize(("pattern", "ok"), [
    ("^o-[0-9]+$", True), (r"^[A-Z]{3}\d{2}$", True), (r"^(ab|cd)+\.x$", True), ("^a.b$", True),
    ("o-[0-9]+", True), (r"^a\s$", True), ("^[^x]+$", True), (r"\Ax\Z", True),
    ("^a|b$", False), ("^(?i)a$", False), (r"^a(?=b)b$", False), ("^a$b$", False), (r"\bx", False),
    (r"(a)\1", False), ("^a{100}$", False),
])
def test_bulk_checkable_patterns(pattern, ok):
    from engine import kernels
    from engine.contracts.compiler import bulk_checkable

    # the column-wise path needs the compiled kernel; with the twin, patterns stay in msgspec
    assert bulk_checkable(pattern) is (ok and kernels.USING_EXTENSIONS)


def test_batch_pattern_violations_are_found_with_path_value_and_index():
    c = loads_contract("""
        name: t
        version: 1.0.0
        fields:
          - {name: code, type: string, constraints: {pattern: "^[A-Z]{2}[0-9]+$"}}
          - {name: alt, type: string, nullable: true, required: false, constraints: {pattern: "^x+$"}}
          - {name: free, type: string, constraints: {pattern: "b"}}
    """)
    v = c.compile()
    recs = [{"code": "AB1", "free": "abc"}, {"code": "ab1", "free": "b"}, {"code": "AB2\nCD3", "free": "b"},
            {"code": "AB3", "alt": None, "free": "b"}, {"code": "AB4", "alt": "xy", "free": "b"},
            {"code": "AB5", "alt": "xx", "free": "a"}, "not an object", {"code": "AB6", "free": "b"}]
    for batch in (recs, [msgspec.json.encode(r) for r in recs]):
        valid, invalid = v.validate_many(batch)
        assert [r.code for r in valid] == ["AB1", "AB3", "AB6"]
        assert [(d.index, d.issues[0].path, d.issues[0].value) for d in invalid] == [
            (1, "code", "ab1"), (2, "code", "AB2\nCD3"), (4, "alt", "xy"), (5, "free", "a"),
            (6, "", "not an object")]
    with pytest.raises(ContractValidationError, match="code: Expected `str` matching regex"):
        v.validate_python({"code": "zz", "free": "b"})
    assert not v.is_valid(b'{"code": "A1", "free": "b"}') and v.is_valid(b'{"code": "AB1", "free": "b"}')


PATTERN_ATOMS = ["a", "b", "x", ".", "[a-c]", "[^b]", r"\d", r"\w", r"\s", "(ab|c)", "(?:x|)"]


@st.composite
def regexes(draw):
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        atom = draw(st.sampled_from(PATTERN_ATOMS))
        parts.append(atom + draw(st.sampled_from(["", "*", "+", "?", "{2}", "{1,3}", "*?"])))
    body = "".join(parts)
    return draw(st.sampled_from(["", "^"])) + body + draw(st.sampled_from(["", "$"]))


@settings(max_examples=200, deadline=None)
@given(regexes(), st.lists(st.text(alphabet="abcx1 _.\n\u00e9", max_size=6), max_size=40))
def test_column_pattern_check_equals_re_search(pattern, values):
    """Differential test: the DFA kernel path (and its fallbacks) agrees with re.search on every value."""
    import re

    from engine.contracts.patterns import column_failures, compile_dfa

    dfa = compile_dfa(pattern)
    assert dfa is not None, pattern
    expected = [i for i, v in enumerate(values) if re.search(pattern, v) is None]
    assert column_failures(values, dfa, re.compile(pattern).search) == expected
    ascii_ok = [v for v in values if v.isascii() and "\n" not in v]
    assert dfa.failures(ascii_ok).tolist() == [i for i, v in enumerate(ascii_ok) if re.search(pattern, v) is None]


def test_benchmark_validators_agree():
    """The benchmark's validators find the same valid records (checked on a small sample)."""
    from benchmarks.bench_contracts import (engine_validate, jsonschema_validate, python_validate, records,
                                            unrolled_validate)

    sample = records(3000)
    assert (engine_validate(sample) == python_validate(sample) == unrolled_validate(sample)
            == jsonschema_validate(sample) == 2997)


@pytest.mark.parametrize("field, bad", [
    ("order_id", "x-1"), ("order_id", "o-"), ("order_id", "o-" + "1" * 40), ("order_id", 7),
    ("user_id", 0), ("user_id", True), ("user_id", 1.5), ("amount", -0.5), ("amount", 100000.5),
    ("amount", "3"), ("currency", "CHF"), ("state", "LOST"), ("quantity", 0), ("quantity", 1001),
    ("express", 1), ("ts", 1.5), ("ts", None), ("user_id", None),
])
def test_benchmark_validators_refuse_the_same_records(field, bad):
    """Each baseline refuses a record with one broken field, naming it, and the engine refuses it too."""
    import json

    from benchmarks.bench_contracts import (_field_loop_problem, _unrolled_problem, engine_validate,
                                            records)

    record = json.loads(records(1)[0])
    assert _field_loop_problem(record) is None and _unrolled_problem(record) is None
    record[field] = bad
    assert _field_loop_problem(record) == _unrolled_problem(record) == field
    assert engine_validate([json.dumps(record).encode()]) == 0
    del record[field]
    assert _field_loop_problem(record) == field
