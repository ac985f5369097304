"""Soundness of the compatibility rules against real readers: whenever the rules say a reader schema can
read a writer schema's data, data generated for the writer must actually be readable.

Avro: fastavro writes a datum with the writer schema and reads it back with the reader schema (Avro
schema resolution). JSON Schema: the ``jsonschema`` package validates writer-valid documents against the
reader schema, including extra properties wherever the writer's content model is open.
"""

from __future__ import annotations

import io
import string

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from engine.contracts.avro_schema import parse_avro
from engine.contracts.compatibility import avro_reader_problems, json_reader_problems

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PRIMS = ["int", "long", "float", "double", "string", "bytes", "boolean"]
FIELD_NAMES = ["a", "b", "c", "d"]


@st.composite
def avro_type(draw, depth=0, name="E"):
    kind = draw(st.sampled_from(PRIMS + ["enum", "nullable", "array", "map"] if depth < 2 else PRIMS))
    if kind == "enum":
        symbols = draw(st.lists(st.sampled_from(["X", "Y", "Z"]), min_size=1, max_size=3, unique=True))
        enum = {"type": "enum", "name": name, "symbols": symbols}
        if draw(st.booleans()):
            enum["default"] = symbols[0]
        return enum
    if kind == "nullable":
        return ["null", draw(st.sampled_from(PRIMS))]
    if kind == "array":
        return {"type": "array", "items": draw(avro_type(depth + 1, name))}
    if kind == "map":
        return {"type": "map", "values": draw(avro_type(depth + 1, name))}
    return kind


def _default_for(t):
    if isinstance(t, list):
        return None
    if isinstance(t, dict):
        return t["symbols"][0] if t["type"] == "enum" else ([] if t["type"] == "array" else {})
    return {"int": 0, "long": 0, "float": 0.0, "double": 0.0, "string": "", "bytes": "", "boolean": False}[t]


@st.composite
def avro_record(draw):
    names = draw(st.lists(st.sampled_from(FIELD_NAMES), min_size=1, max_size=4, unique=True))
    fields = []
    for n in names:
        t = draw(avro_type(name="E" + n))
        f = {"name": n, "type": t}
        if draw(st.booleans()):
            f["default"] = _default_for(t)
        fields.append(f)
    return {"type": "record", "name": "R", "fields": fields}


def avro_datum(t, draw):
    if isinstance(t, list):
        return draw(st.one_of(st.none(), st.just(avro_datum(t[1], draw))))
    if isinstance(t, dict):
        if t["type"] == "enum":
            return draw(st.sampled_from(t["symbols"]))
        if t["type"] == "array":
            return [avro_datum(t["items"], draw) for _ in range(draw(st.integers(0, 2)))]
        if t["type"] == "map":
            return {k: avro_datum(t["values"], draw) for k in draw(st.lists(st.text(string.ascii_lowercase, max_size=2), max_size=2))}
        return {f["name"]: avro_datum(f["type"], draw) for f in t["fields"]}
    return draw({"int": st.integers(-2**31, 2**31 - 1), "long": st.integers(-2**63, 2**63 - 1),
                 "float": st.floats(-1e6, 1e6, width=32), "double": st.floats(allow_nan=False),
                 "string": st.text(max_size=5), "boolean": st.booleans(),
                 # Avro allows bytes -> string resolution; only UTF-8 bytes can actually be read as a string
                 "bytes": st.text(max_size=5).map(str.encode)}[t])


@SETTINGS
@given(avro_record(), avro_record(), st.data())
def test_avro_compatible_verdicts_read_real_data(reader, writer, data):
    fastavro = pytest.importorskip("fastavro")
    problems = avro_reader_problems(parse_avro(reader), parse_avro(writer))
    note(f"problems: {[str(p) for p in problems]}")
    event("compatible" if not problems else "incompatible")
    if problems:
        return
    datum = avro_datum(writer, data.draw)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(writer), datum)
    buf.seek(0)
    back = fastavro.schemaless_reader(buf, fastavro.parse_schema(writer), fastavro.parse_schema(reader))
    assert set(back) == {f["name"] for f in reader["fields"]}


JSON_TYPES = ["string", "integer", "number", "boolean", "null"]


@st.composite
def json_leaf(draw):
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return {}
    if choice == 1:
        return {"enum": draw(st.lists(st.sampled_from(["x", "y", 1, 2]), min_size=1, max_size=3, unique=True))}
    t = draw(st.sampled_from(JSON_TYPES))
    s: dict = {"type": t}
    if t == "string" and draw(st.booleans()):
        s["maxLength"] = draw(st.integers(0, 4))
    if t in ("integer", "number") and draw(st.booleans()):
        s["minimum"] = draw(st.integers(-3, 3))
    if draw(st.integers(0, 4)) == 0:
        s["type"] = [t, "null"]
    return s


@st.composite
def json_object(draw):
    names = draw(st.lists(st.sampled_from(FIELD_NAMES), max_size=4, unique=True))
    props = {n: draw(json_leaf()) for n in names}
    s: dict = {"type": "object", "properties": props}
    req = [n for n in names if draw(st.booleans())]
    if req:
        s["required"] = req
    additional = draw(st.sampled_from(["open", "closed", "partial"]))
    if additional == "closed":
        s["additionalProperties"] = False
    elif additional == "partial":
        s["additionalProperties"] = draw(json_leaf())
    return s


def json_value(schema, draw):
    if "enum" in schema:
        return draw(st.sampled_from(schema["enum"]))
    types = schema.get("type")
    if types is None:
        return draw(st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=3)))
    t = draw(st.sampled_from(types if isinstance(types, list) else [types]))
    if t == "string":
        return draw(st.text(max_size=schema.get("maxLength", 5)))
    if t in ("integer", "number"):
        v = draw(st.integers(schema.get("minimum", -5), 8))
        return v if t == "integer" or draw(st.booleans()) else v + 0.5
    return {"boolean": draw(st.booleans()), "null": None}.get(t) if t in ("boolean", "null") else None


def json_document(schema, draw):
    doc = {}
    for name, prop in schema["properties"].items():
        if name in schema.get("required", []) or draw(st.booleans()):
            doc[name] = json_value(prop, draw)
    additional = schema.get("additionalProperties", True)
    if additional is not False:
        for name in draw(st.lists(st.sampled_from(FIELD_NAMES + ["zz"]), max_size=2, unique=True)):
            if name not in schema["properties"]:
                doc[name] = json_value(additional if isinstance(additional, dict) else {}, draw)
    return doc


@SETTINGS
@given(json_object(), json_object(), st.data())
def test_json_schema_compatible_verdicts_accept_real_documents(reader, writer, data):
    import jsonschema

    problems = json_reader_problems(reader, writer)
    note(f"problems: {[str(p) for p in problems]}")
    event("compatible" if not problems else "incompatible")
    doc = json_document(writer, data.draw)
    assert jsonschema.Draft202012Validator(writer).is_valid(doc), "generator bug: document invalid for the writer"
    if not problems:
        errors = [e.message for e in jsonschema.Draft202012Validator(reader).iter_errors(doc)]
        assert errors == [], f"rules said compatible but the reader rejects {doc}: {errors}"
