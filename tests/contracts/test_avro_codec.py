"""The Avro binary codec against fastavro (an independent implementation), and Avro-framed contract serde."""

from __future__ import annotations

import datetime
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.contracts.avro_codec import AvroCodecError, decode, encode
from engine.contracts.avro_schema import parse_avro
from engine.contracts.registry import SchemaRegistry
from engine.contracts.wire import ContractDeserializer, ContractSerializer

from tests.contracts.strategies import contracts, record_strategy

fastavro = pytest.importorskip("fastavro")

SCHEMA = {"type": "record", "name": "R", "fields": [
    {"name": "i", "type": "int"}, {"name": "l", "type": "long"}, {"name": "f", "type": "float"},
    {"name": "d", "type": "double"}, {"name": "s", "type": "string"}, {"name": "b", "type": "bytes"},
    {"name": "t", "type": "boolean"}, {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
    {"name": "a", "type": {"type": "array", "items": ["null", "long"]}},
    {"name": "m", "type": {"type": "map", "values": "string"}},
    {"name": "x", "type": {"type": "fixed", "name": "X", "size": 2}},
    {"name": "n", "type": ["null", {"type": "record", "name": "N", "fields": [{"name": "v", "type": "string"}]}]},
]}

datums = st.fixed_dictionaries({
    "i": st.integers(-2**31, 2**31 - 1), "l": st.integers(-2**63, 2**63 - 1),
    "f": st.floats(width=32, allow_nan=False), "d": st.floats(allow_nan=False), "s": st.text(max_size=8),
    "b": st.binary(max_size=8), "t": st.booleans(), "e": st.sampled_from(["A", "B"]),
    "a": st.lists(st.one_of(st.none(), st.integers(-2**63, 2**63 - 1)), max_size=4),
    "m": st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=3),
    "x": st.binary(min_size=2, max_size=2), "n": st.one_of(st.none(), st.fixed_dictionaries({"v": st.text(max_size=3)})),
})


@settings(max_examples=150, deadline=None)
@given(datums)
def test_codec_agrees_with_fastavro_both_ways(datum):
    ours = parse_avro(SCHEMA)
    theirs = fastavro.parse_schema(SCHEMA)
    data = encode(ours, datum)
    assert fastavro.schemaless_reader(io.BytesIO(data), theirs) == datum
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, theirs, datum)
    assert decode(ours, buf.getvalue()) == datum


def test_codec_errors_name_the_path():
    ours = parse_avro(SCHEMA)
    with pytest.raises(AvroCodecError, match="i: expected int"):
        encode(ours, {"i": "x"})
    with pytest.raises(AvroCodecError, match=r"a\[1\]: matches no branch"):
        encode(ours, {"i": 1, "l": 1, "f": 1.0, "d": 1.0, "s": "", "b": b"", "t": True, "e": "A", "a": [1, "x"]})
    with pytest.raises(AvroCodecError, match="truncated"):
        decode(ours, b"\x02")
    with pytest.raises(AvroCodecError, match="trailing"):
        decode(parse_avro('"int"'), b"\x02\x00")


SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.data())
def test_contract_records_round_trip_through_avro_frames(data):
    contract = data.draw(contracts())
    records = data.draw(st.lists(record_strategy(contract.fields), min_size=1, max_size=4))
    registry = SchemaRegistry()
    frames, dead = ContractSerializer(contract, registry, "t-value", schema_format="avro").serialize_many(records)
    assert dead == []
    result = ContractDeserializer(contract, registry, output="dict").deserialize_many(frames)
    assert result.invalid == []
    expected = contract.compile().validate_many(records, output="dict").valid
    assert result.valid == [_absent_nullable_as_null(e, contract.fields) for e in expected]


def _absent_nullable_as_null(rec, fields):
    """Avro has no "absent": an absent optional field that may be null comes back as null."""
    if not isinstance(rec, dict):
        return rec
    for f in fields:
        if f.name not in rec:
            if not f.required and f.type.nullable:
                rec[f.name] = None
            continue
        v = rec[f.name]
        t = f.type
        if t.type == "object":
            _absent_nullable_as_null(v, t.fields)
        elif t.type == "array" and t.items.type == "object" and isinstance(v, list):
            for item in v:
                _absent_nullable_as_null(item, t.items.fields)
        elif t.type == "map" and t.values.type == "object" and isinstance(v, dict):
            for item in v.values():
                _absent_nullable_as_null(item, t.values.fields)
    return rec


def test_avro_reader_takes_defaults_for_fields_the_writer_lacks(orders, order_record):
    from engine.contracts import loads_contract

    registry = SchemaRegistry()
    v1 = loads_contract("name: orders\nversion: 1.0.0\nfields: [{name: id, type: string}]")
    v2 = loads_contract("name: orders\nversion: 1.1.0\nfields: [{name: id, type: string}, "
                        "{name: day, type: date, default: '2024-01-01'}, {name: n, type: integer, default: 5}]")
    frame = ContractSerializer(v1, registry, "o-value", schema_format="avro").serialize({"id": "a"})
    rec = ContractDeserializer(v2, registry).deserialize(frame)
    assert (rec.id, rec.day, rec.n) == ("a", datetime.date(2024, 1, 1), 5)
