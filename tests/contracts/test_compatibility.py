"""Compatibility matrix: every change kind x every mode, for Avro, contracts and JSON Schema.

Each change kind states two facts from the Avro resolution rules / Confluent's JSON Schema rules:
``backward`` (the new schema can read data written with the old one) and ``forward`` (the old schema
can read data written with the new one). The expected verdict of every mode follows from them:
BACKWARD = backward, FORWARD = forward, FULL = both, NONE = always; with two versions the transitive
modes agree with their plain forms. Transitive behaviour over three versions is tested separately.
"""

from __future__ import annotations

import pytest

from engine.contracts import IncompatibleSchemaError, loads_contract
from engine.contracts.compatibility import MODES, check_compatibility, ensure_compatible


def expected(mode: str, backward: bool, forward: bool) -> bool:
    base = mode.removesuffix("_TRANSITIVE")
    return {"BACKWARD": backward, "FORWARD": forward, "FULL": backward and forward, "NONE": True}[base]


def rec(*fields, name="R", **extra):
    return {"type": "record", "name": name, "fields": list(fields), **extra}


def f(name, type_, **kw):
    return {"name": name, "type": type_, **kw}


COLOR = {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}
COLOR3 = {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "BLUE"]}

# (kind, old, new, backward, forward, rule reported for the failing direction)
AVRO = [
    ("add field with default", rec(f("a", "int")), rec(f("a", "int"), f("b", "string", default="x")), True, True, None),
    ("add field without default", rec(f("a", "int")), rec(f("a", "int"), f("b", "string")), False, True,
     "READER_FIELD_MISSING_DEFAULT_VALUE"),
    ("remove field with default", rec(f("a", "int"), f("b", "string", default="x")), rec(f("a", "int")), True, True, None),
    ("remove field without default", rec(f("a", "int"), f("b", "string")), rec(f("a", "int")), True, False,
     "READER_FIELD_MISSING_DEFAULT_VALUE"),
    ("int -> long", rec(f("a", "int")), rec(f("a", "long")), True, False, "TYPE_MISMATCH"),
    ("long -> float", rec(f("a", "long")), rec(f("a", "float")), True, False, "TYPE_MISMATCH"),
    ("float -> double", rec(f("a", "float")), rec(f("a", "double")), True, False, "TYPE_MISMATCH"),
    ("int -> double", rec(f("a", "int")), rec(f("a", "double")), True, False, "TYPE_MISMATCH"),
    ("long -> int", rec(f("a", "long")), rec(f("a", "int")), False, True, "TYPE_MISMATCH"),
    ("double -> float", rec(f("a", "double")), rec(f("a", "float")), False, True, "TYPE_MISMATCH"),
    ("string -> bytes", rec(f("a", "string")), rec(f("a", "bytes")), True, True, None),
    ("bytes -> string", rec(f("a", "bytes")), rec(f("a", "string")), True, True, None),
    ("string -> int", rec(f("a", "string")), rec(f("a", "int")), False, False, "TYPE_MISMATCH"),
    ("add enum symbol", rec(f("c", COLOR)), rec(f("c", COLOR3)), True, False, "MISSING_ENUM_SYMBOLS"),
    ("remove enum symbol", rec(f("c", COLOR3)), rec(f("c", COLOR)), False, True, "MISSING_ENUM_SYMBOLS"),
    ("add enum symbol, enum has default", rec(f("c", {**COLOR, "default": "RED"})),
     rec(f("c", {**COLOR3, "default": "RED"})), True, True, None),
    ("make field nullable", rec(f("a", "string")), rec(f("a", ["null", "string"], default=None)), True, False,
     "MISSING_UNION_BRANCH"),
    ("make nullable field required", rec(f("a", ["null", "string"], default=None)), rec(f("a", "string")), False, True,
     "MISSING_UNION_BRANCH"),
    ("add union branch", rec(f("a", ["null", "string"])), rec(f("a", ["null", "string", "long"])), True, False,
     "MISSING_UNION_BRANCH"),
    ("rename record", rec(f("a", "int"), name="Old"), rec(f("a", "int"), name="New"), False, False, "NAME_MISMATCH"),
    ("rename record with alias", rec(f("a", "int"), name="Old"), rec(f("a", "int"), name="New", aliases=["Old"]),
     True, False, "NAME_MISMATCH"),
    ("rename field with alias", rec(f("a", "int")), rec(f("b", "int", aliases=["a"])), True, False,
     "READER_FIELD_MISSING_DEFAULT_VALUE"),
    ("nested record: add field without default", rec(f("addr", rec(f("city", "string"), name="Addr"))),
     rec(f("addr", rec(f("city", "string"), f("zip", "string"), name="Addr"))), False, True,
     "READER_FIELD_MISSING_DEFAULT_VALUE"),
    ("array items int -> long", rec(f("xs", {"type": "array", "items": "int"})),
     rec(f("xs", {"type": "array", "items": "long"})), True, False, "TYPE_MISMATCH"),
    ("map values string -> int", rec(f("m", {"type": "map", "values": "string"})),
     rec(f("m", {"type": "map", "values": "int"})), False, False, "TYPE_MISMATCH"),
    ("fixed size change", rec(f("h", {"type": "fixed", "name": "H", "size": 16})),
     rec(f("h", {"type": "fixed", "name": "H", "size": 32})), False, False, "FIXED_SIZE_MISMATCH"),
    ("no change", rec(f("a", "int")), rec(f("a", "int")), True, True, None),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("kind", "old", "new", "backward", "forward", "rule"), AVRO, ids=[c[0] for c in AVRO])
def test_avro_matrix(kind, old, new, backward, forward, rule, mode):
    problems = check_compatibility(new, [old], mode, "AVRO")
    assert (not problems) == expected(mode, backward, forward), [str(p) for p in problems]
    if problems:
        assert {p.rule for p in problems} == {rule}
        assert all(p.path for p in problems)


def test_avro_refusal_names_the_field_and_rule():
    old = rec(f("addr", rec(f("city", "string"), name="Addr")))
    new = rec(f("addr", rec(f("city", "string"), f("zip", "string"), name="Addr")))
    with pytest.raises(IncompatibleSchemaError) as info:
        ensure_compatible(new, [old], "BACKWARD", "AVRO")
    [p] = info.value.problems
    assert (p.rule, p.path, p.version) == ("READER_FIELD_MISSING_DEFAULT_VALUE", "addr.zip", 1)
    assert "addr.zip" in str(info.value) and "READER_FIELD_MISSING_DEFAULT_VALUE" in str(info.value)


def test_avro_recursive_schema_terminates():
    node = {"type": "record", "name": "Node", "fields": [
        {"name": "value", "type": "int"}, {"name": "next", "type": ["null", "Node"], "default": None}]}
    node2 = {"type": "record", "name": "Node", "fields": [
        {"name": "value", "type": "long"}, {"name": "next", "type": ["null", "Node"], "default": None}]}
    assert check_compatibility(node2, [node], "BACKWARD", "AVRO") == []
    assert [p.rule for p in check_compatibility(node2, [node], "FORWARD", "AVRO")] == ["TYPE_MISMATCH"]


# Transitive: v3 is compatible with v2 but not with v1.
TRANSITIVE = [
    # BACKWARD: v2 adds b with a default, v3 drops the default; v3 cannot read v1 data (no b)
    ("BACKWARD", [rec(f("a", "int")), rec(f("a", "int"), f("b", "int", default=0))],
     rec(f("a", "int"), f("b", "int"))),
    # FORWARD: v1 requires b, v2 gives b a default, v3 removes b; v1 cannot read v3 data
    ("FORWARD", [rec(f("a", "int"), f("b", "int")), rec(f("a", "int"), f("b", "int", default=0))],
     rec(f("a", "int"))),
    # FULL: v2 adds b with default; v3 removes the default: v3 reads v2 data (b present) and v2 reads v3 data,
    # but v3 cannot read v1 data
    ("FULL", [rec(f("a", "int")), rec(f("a", "int"), f("b", "int", default=0))], rec(f("a", "int"), f("b", "int"))),
]


@pytest.mark.parametrize(("base", "history", "new"), TRANSITIVE, ids=[t[0] for t in TRANSITIVE])
def test_avro_transitive_over_three_versions(base, history, new):
    assert check_compatibility(new, history, base, "AVRO") == []
    problems = check_compatibility(new, history, base + "_TRANSITIVE", "AVRO")
    assert problems and {p.version for p in problems} == {1}
    assert check_compatibility(new, history, "NONE", "AVRO") == []


# ------------------------------------------------------------------------------------- contracts
def contract(fields_yaml: str, extra: str = "") -> object:
    return loads_contract(f"name: orders\nversion: 1.0.0\n{extra}fields:\n{fields_yaml}")


BASE = "  - {name: id, type: string}\n"
CONTRACTS = [
    ("add optional field", BASE, BASE + "  - {name: note, type: string, required: false}\n", True, True, None),
    ("add field with default", BASE, BASE + "  - {name: n, type: integer, default: 0}\n", True, True, None),
    ("add required field", BASE, BASE + "  - {name: n, type: integer}\n", False, True,
     "READER_FIELD_MISSING_DEFAULT_VALUE"),
    ("remove required field", BASE + "  - {name: n, type: integer}\n", BASE, True, False,
     "READER_FIELD_MISSING_DEFAULT_VALUE"),
    ("remove optional field", BASE + "  - {name: n, type: integer, required: false}\n", BASE, True, True, None),
    ("integer -> float", BASE + "  - {name: n, type: integer}\n", BASE + "  - {name: n, type: float}\n", True, False,
     "TYPE_MISMATCH"),
    ("float -> integer", BASE + "  - {name: n, type: float}\n", BASE + "  - {name: n, type: integer}\n", False, True,
     "TYPE_MISMATCH"),
    ("string <-> bytes", BASE + "  - {name: n, type: string}\n", BASE + "  - {name: n, type: bytes}\n", True, True, None),
    ("string -> enum", BASE + "  - {name: n, type: string}\n", BASE + "  - {name: n, type: enum, symbols: [A]}\n",
     False, False, "TYPE_MISMATCH"),
    ("add enum symbol", BASE + "  - {name: s, type: enum, symbols: [A, B]}\n",
     BASE + "  - {name: s, type: enum, symbols: [A, B, C]}\n", True, False, "MISSING_ENUM_SYMBOLS"),
    ("remove enum symbol", BASE + "  - {name: s, type: enum, symbols: [A, B, C]}\n",
     BASE + "  - {name: s, type: enum, symbols: [A, B]}\n", False, True, "MISSING_ENUM_SYMBOLS"),
    ("make nullable", BASE + "  - {name: n, type: integer}\n", BASE + "  - {name: n, type: integer, nullable: true}\n",
     True, False, "MISSING_UNION_BRANCH"),
    ("make optional field required", BASE + "  - {name: n, type: integer, required: false}\n",
     BASE + "  - {name: n, type: integer}\n", False, True, "MISSING_UNION_BRANCH"),
    ("make defaulted field required", BASE + "  - {name: n, type: integer, default: 1}\n",
     BASE + "  - {name: n, type: integer}\n", False, True, "REQUIRED_FIELD_ADDED"),
    ("tighten lower bound", BASE + "  - {name: n, type: integer, constraints: {ge: 0}}\n",
     BASE + "  - {name: n, type: integer, constraints: {ge: 10}}\n", False, True, "CONSTRAINT_NARROWED"),
    ("loosen max_length", BASE + "  - {name: n, type: string, constraints: {max_length: 10}}\n",
     BASE + "  - {name: n, type: string, constraints: {max_length: 20}}\n", True, False, "CONSTRAINT_NARROWED"),
    ("add pattern", BASE + "  - {name: n, type: string}\n",
     BASE + "  - {name: n, type: string, constraints: {pattern: '^a'}}\n", False, True, "CONSTRAINT_NARROWED"),
    ("remove allowed value", BASE + "  - {name: n, type: string, constraints: {allowed_values: [a, b]}}\n",
     BASE + "  - {name: n, type: string, constraints: {allowed_values: [a]}}\n", False, True, "CONSTRAINT_NARROWED"),
    ("nested object: add required field", BASE + "  - {name: o, type: object, fields: [{name: x, type: integer}]}\n",
     BASE + "  - {name: o, type: object, fields: [{name: x, type: integer}, {name: y, type: integer}]}\n",
     False, True, "READER_FIELD_MISSING_DEFAULT_VALUE"),
    ("array items integer -> float", BASE + "  - {name: xs, type: array, items: integer}\n",
     BASE + "  - {name: xs, type: array, items: float}\n", True, False, "TYPE_MISMATCH"),
    ("closed contract: add optional field", BASE, BASE + "  - {name: note, type: string, required: false}\n",
     True, False, "FIELD_NOT_ALLOWED"),
    ("metadata only (owner, description)", BASE, BASE.replace("string}", "string, description: the id}"), True, True,
     None),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("kind", "old", "new", "backward", "forward", "rule"), CONTRACTS, ids=[c[0] for c in CONTRACTS])
def test_contract_matrix(kind, old, new, backward, forward, rule, mode):
    extra = "additional_fields: forbid\n" if kind.startswith("closed") else ""
    old_c, new_c = contract(old, extra), contract(new, extra)
    problems = check_compatibility(new_c, [old_c], mode)
    assert (not problems) == expected(mode, backward, forward), [str(p) for p in problems]
    if problems:
        assert {p.rule for p in problems} == {rule}, [str(p) for p in problems]


def test_renaming_a_contract_is_not_a_schema_change():
    nested = BASE + "  - {name: o, type: object, fields: [{name: x, type: enum, symbols: [A]}]}\n"
    old = contract(nested)
    new = loads_contract(f"name: orders-v2\nversion: 2.0.0\nnamespace: shop\nfields:\n{nested}")
    assert check_compatibility(new, [old], "FULL") == []


def test_contract_transitive_over_three_versions():
    v1 = contract(BASE)
    v2 = contract(BASE + "  - {name: n, type: integer, default: 0}\n")
    v3 = contract(BASE + "  - {name: n, type: integer, required: false, nullable: true}\n")
    v4 = contract(BASE + "  - {name: n, type: integer, nullable: true}\n")
    assert check_compatibility(v3, [v1, v2], "BACKWARD_TRANSITIVE") == []
    assert check_compatibility(v4, [v1, v2, v3], "BACKWARD") != []  # v4 requires n, v3 data may lack it
    v5 = contract(BASE + "  - {name: n, type: integer, constraints: {ge: 0}, default: 0}\n")
    v6 = contract(BASE + "  - {name: n, type: integer, constraints: {ge: 0, le: 9}, default: 0}\n")
    assert check_compatibility(v6, [v5], "FORWARD") == []
    problems = check_compatibility(v6, [v1, v5], "BACKWARD_TRANSITIVE")
    assert [(p.rule, p.path, p.version) for p in problems] == [("CONSTRAINT_NARROWED", "n", 2)]
    assert "le=9" in problems[0].message


# ---------------------------------------------------------------------------------- JSON Schema
def obj(props=None, required=None, additional=None, **extra):
    s = {"type": "object", "properties": props or {}}
    if required:
        s["required"] = required
    if additional is not None:
        s["additionalProperties"] = additional
    s.update(extra)
    return s


S, I, N = {"type": "string"}, {"type": "integer"}, {"type": "number"}
JSON = [
    ("closed: add optional property", obj({"a": S}, additional=False), obj({"a": S, "b": I}, additional=False),
     True, False, "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"),
    ("closed: add required property", obj({"a": S}, additional=False),
     obj({"a": S, "b": I}, required=["b"], additional=False), False, False, None),
    ("closed: add required property with default", obj({"a": S}, additional=False),
     obj({"a": S, "b": {**I, "default": 0}}, required=["b"], additional=False), True, False,
     "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"),
    ("closed: remove property", obj({"a": S, "b": I}, additional=False), obj({"a": S}, additional=False),
     False, True, "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"),
    ("open: add property", obj({"a": S}), obj({"a": S, "b": I}), False, True, "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"),
    ("open: remove property", obj({"a": S, "b": I}), obj({"a": S}), True, False, "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"),
    ("open: add property with empty schema", obj({"a": S}), obj({"a": S, "b": {}}), True, True, None),
    ("partially open: add covered property", obj({"a": S}, additional=S), obj({"a": S, "b": S}, additional=S),
     True, True, None),
    ("partially open: add uncovered property", obj({"a": S}, additional=S), obj({"a": S, "b": I}, additional=S),
     False, False, None),
    ("open -> closed", obj({"a": S}), obj({"a": S}, additional=False), False, True, "ADDITIONAL_PROPERTIES_REMOVED"),
    ("integer -> number", obj({"a": I}), obj({"a": N}), True, False, "TYPE_NARROWED"),
    ("string -> integer", obj({"a": S}), obj({"a": I}), False, False, "TYPE_CHANGED"),
    ("add type to union", obj({"a": S}), obj({"a": {"type": ["string", "null"]}}), True, False, "TYPE_NARROWED"),
    ("maxLength decreased", obj({"a": {**S, "maxLength": 10}}), obj({"a": {**S, "maxLength": 5}}), False, True,
     "MAX_LENGTH_DECREASED"),
    ("minimum added", obj({"a": I}), obj({"a": {**I, "minimum": 0}}), False, True, "MINIMUM_ADDED"),
    ("pattern added", obj({"a": S}), obj({"a": {**S, "pattern": "^x"}}), False, True, "PATTERN_ADDED"),
    ("enum extended", obj({"a": {"enum": ["A", "B"]}}), obj({"a": {"enum": ["A", "B", "C"]}}), True, False,
     "ENUM_ARRAY_NARROWED"),
    ("property made required", obj({"a": S}), obj({"a": S}, required=["a"]), False, True, "REQUIRED_ATTRIBUTE_ADDED"),
    ("array items integer -> number", obj({"xs": {"type": "array", "items": I}}),
     obj({"xs": {"type": "array", "items": N}}), True, False, "TYPE_NARROWED"),
    ("anyOf extended", obj({"a": {"anyOf": [S]}}), obj({"a": {"anyOf": [S, I]}}), True, False, "SUM_TYPE_NARROWED"),
    ("nested property narrowed", obj({"o": obj({"x": N})}), obj({"o": obj({"x": I})}), False, True, "TYPE_NARROWED"),
    ("allOf added (not analysed: reported)", obj({"a": I}), obj({"a": {**I, "allOf": [{"minimum": 3}]}}), False, True,
     "ALL_OF_CHANGED"),
    ("format added (not analysed: reported)", obj({"a": S}), obj({"a": {**S, "format": "email"}}), False, True,
     "FORMAT_CHANGED"),
    ("$ref to an unchanged definition", {"$defs": {"A": S}, **obj({"a": {"$ref": "#/$defs/A"}})},
     {"$defs": {"A": S}, **obj({"a": {"$ref": "#/$defs/A"}})}, True, True, None),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("kind", "old", "new", "backward", "forward", "rule"), JSON, ids=[c[0] for c in JSON])
def test_json_schema_matrix(kind, old, new, backward, forward, rule, mode):
    problems = check_compatibility(new, [old], mode, "JSON")
    assert (not problems) == expected(mode, backward, forward), [str(p) for p in problems]
    if problems and rule is not None:
        assert {p.rule for p in problems} == {rule}, [str(p) for p in problems]


def test_json_schema_transitive_over_three_versions():
    v1 = obj({"a": {**S, "maxLength": 20}})
    v2 = obj({"a": {**S, "maxLength": 10}})
    v3 = obj({"a": {**S, "maxLength": 5}})
    # FORWARD: each older reader accepts the newer, stricter data
    assert check_compatibility(v3, [v1, v2], "FORWARD_TRANSITIVE", "JSON") == []
    # BACKWARD: v3 cannot read v2 data, nor v1 data
    problems = check_compatibility(v3, [v1, v2], "BACKWARD_TRANSITIVE", "JSON")
    assert sorted(p.version for p in problems) == [1, 2]
    assert all(p.path == "#/properties/a" and p.rule == "MAX_LENGTH_DECREASED" for p in problems)
    # a loosening chain: BACKWARD holds against the latest but v1 had a field v3 narrows
    w1 = obj({"a": N})
    w2 = obj({"a": N, "b": {}})
    w3 = obj({"a": I, "b": {}})
    assert check_compatibility(w2, [w1], "FULL", "JSON") == []
    assert check_compatibility(w3, [w1, w2], "FORWARD_TRANSITIVE", "JSON") == []
    assert [p.version for p in check_compatibility(w3, [w1, w2], "FULL_TRANSITIVE", "JSON")] == [2, 1]


def test_unresolvable_references_are_not_assumed_compatible():
    ext = obj({"a": {"$ref": "https://example.com/a.json"}})
    other = obj({"a": {"$ref": "https://example.com/b.json"}})
    assert check_compatibility(ext, [ext], "FULL", "JSON") == []  # the same reference on both sides
    problems = check_compatibility(other, [ext], "BACKWARD", "JSON")
    assert [(p.rule, p.path) for p in problems] == [("REFERENCE_UNRESOLVED", "#/properties/a")]
    assert check_compatibility(obj({"a": {"$ref": "#/$defs/missing"}}), [obj({"a": S})], "BACKWARD", "JSON")


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown compatibility mode 'SIDEWAYS'"):
        check_compatibility(obj({}), [obj({})], "SIDEWAYS", "JSON")
