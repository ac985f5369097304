"""The embedded SchemaRegistry over both stores: ids, versions, config, deletes, persistence."""

from __future__ import annotations

import json

import pytest

from engine.contracts import IncompatibleSchemaError, loads_contract
from engine.contracts.errors import (
    InvalidCompatibilityLevelError,
    InvalidSchemaError,
    InvalidVersionError,
    SchemaNotFoundError,
    SchemaRegistryError,
    SubjectNotFoundError,
    VersionNotFoundError,
)
from engine.contracts.registry import SchemaRegistry
from engine.contracts.store import MemoryStore, SQLiteStore


def avro(*fields, name="R"):
    return json.dumps({"type": "record", "name": name, "fields": [dict(f) for f in fields]})


A = {"name": "a", "type": "int"}
B_DEFAULT = {"name": "b", "type": "string", "default": "x"}
B = {"name": "b", "type": "string"}


@pytest.fixture(params=["memory", "sqlite"])
def registry(request, tmp_path):
    store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "registry.db")
    reg = SchemaRegistry(store)
    yield reg
    reg.close()


def test_same_schema_under_two_subjects_keeps_one_id(registry):
    r1 = registry.register("orders-value", avro(A))
    r2 = registry.register("payments-value", avro(A))
    assert r1.id == r2.id == 1 and (r1.version, r2.version) == (1, 1)
    # formatting does not make a new schema
    spaced = json.dumps(json.loads(avro(A)), indent=4)
    assert registry.register("orders-value", spaced).version == 1
    assert registry.versions("orders-value") == [1]
    r3 = registry.register("orders-value", avro(A, B_DEFAULT))
    assert (r3.id, r3.version) == (2, 2)
    assert [(v.subject, v.version) for v in registry.subject_versions_for_id(1)] == [("orders-value", 1),
                                                                                    ("payments-value", 1)]


def test_compatibility_is_enforced_with_subject_and_global_config(registry):
    registry.register("s", avro(A))
    with pytest.raises(IncompatibleSchemaError) as info:
        registry.register("s", avro(A, B))
    assert info.value.problems[0].path == "b"
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in str(info.value)
    assert registry.get_compatibility("s") == "BACKWARD"
    registry.set_compatibility("FORWARD", "s")
    assert registry.get_compatibility("s") == "FORWARD" and registry.get_compatibility() == "BACKWARD"
    assert registry.register("s", avro(A, B)).version == 2  # forward: old readers ignore b
    registry.delete_compatibility("s")
    assert registry.get_compatibility("s", default_to_global=False) is None
    registry.set_compatibility("NONE")
    assert registry.get_compatibility("s") == "NONE"
    assert registry.register("s", avro({"name": "z", "type": "string"})).version == 3
    with pytest.raises(InvalidCompatibilityLevelError):
        registry.set_compatibility("SOMETIMES")


def test_transitive_mode_checks_every_live_version(registry):
    registry.set_compatibility("BACKWARD_TRANSITIVE", "s")
    registry.register("s", avro(A))
    registry.register("s", avro(A, B_DEFAULT))
    problems = registry.check("s", avro(A, B), version=None)
    assert [(p.version, p.path) for p in problems] == [(1, "b")]
    assert registry.check("s", avro(A, B), version="latest") == []  # against version 2 only
    # once version 1 is soft-deleted it no longer constrains the subject
    registry.delete_version("s", 1)
    assert registry.register("s", avro(A, B)).version == 3


def test_versions_lookup_and_errors(registry):
    registry.register("s", avro(A))
    registry.register("s", avro(A, B_DEFAULT))
    assert registry.latest("s").version == 2
    assert registry.get_version("s", 1).schema == avro(A)
    assert registry.get_version("s", -1).version == 2
    assert registry.lookup("s", avro(A)).version == 1
    with pytest.raises(SubjectNotFoundError) as e1:
        registry.get_version("nope", 1)
    with pytest.raises(VersionNotFoundError) as e2:
        registry.get_version("s", 9)
    with pytest.raises(InvalidVersionError) as e3:
        registry.get_version("s", "zero")
    with pytest.raises(SchemaNotFoundError) as e4:
        registry.get_schema(99)
    with pytest.raises(SchemaNotFoundError):
        registry.lookup("s", avro({"name": "q", "type": "int"}))
    assert [e.value.error_code for e in (e1, e2, e3, e4)] == [40401, 40402, 42202, 40403]


def test_invalid_schemas_are_refused(registry):
    cases = [("{not json", "AVRO"), (json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "nope"}]}), "AVRO"),
             (json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int", "default": "x"}]}), "AVRO"),
             (json.dumps({"type": 5}), "JSON"), ("[1]", "JSON"), ("{}", "PROTOBUF"),
             (json.dumps({"name": "c", "version": "1", "fields": [{"name": "a", "type": "int"}]}), "CONTRACT")]
    for schema, schema_type in cases:
        with pytest.raises(InvalidSchemaError) as info:
            registry.register("s", schema, schema_type)
        assert info.value.error_code == 42201
    assert registry.subjects() == []


def test_soft_and_hard_delete(registry):
    registry.register("s", avro(A))
    registry.register("s", avro(A, B_DEFAULT))
    with pytest.raises(SchemaRegistryError) as info:
        registry.delete_version("s", 1, permanent=True)
    assert info.value.error_code == 40407
    assert registry.delete_version("s", 1) == 1
    with pytest.raises(SchemaRegistryError) as info:
        registry.delete_version("s", 1)
    assert info.value.error_code == 40406
    assert registry.versions("s") == [2] and registry.versions("s", include_deleted=True) == [1, 2]
    assert registry.get_version("s", 1, include_deleted=True).deleted
    with pytest.raises(SchemaRegistryError) as info:
        registry.delete_subject("s", permanent=True)
    assert info.value.error_code == 40405
    assert registry.delete_subject("s") == [2]
    assert registry.subjects() == [] and registry.subjects(include_deleted=True) == ["s"]
    with pytest.raises(SchemaRegistryError) as info:
        registry.delete_subject("s")
    assert info.value.error_code == 40404
    # the schema (and its id) survive soft deletes; re-registering gets the next version number
    assert registry.get_schema(1).schema == avro(A)
    assert registry.register("s", avro(A)).version == 3
    registry.delete_subject("s")
    assert registry.delete_subject("s", permanent=True) == [1, 2, 3]
    assert registry.subjects(include_deleted=True) == []


def test_contract_and_json_schema_types(registry, orders):
    reg = registry.register_contract("orders-contract", orders)
    assert reg.schema_type == "CONTRACT" and registry.contract("orders-contract") == orders
    tightened = loads_contract(json.dumps(orders.to_dict()).replace('"ge": 1}', '"ge": 5}', 1), "json")
    with pytest.raises(IncompatibleSchemaError, match="CONSTRAINT_NARROWED"):
        registry.register_contract("orders-contract", tightened)
    js = json.dumps(orders.to_json_schema())
    assert registry.register("orders-json", js, "JSON").version == 1
    with pytest.raises(IncompatibleSchemaError, match="TYPE_MISMATCH"):
        registry.register("orders-json", avro(A))  # a subject keeps one schema type


def test_sqlite_registry_survives_reopening(tmp_path):
    path = tmp_path / "r.db"
    reg = SchemaRegistry(SQLiteStore(path))
    reg.register("s", avro(A))
    reg.set_compatibility("FULL", "s")
    reg.close()
    again = SchemaRegistry(SQLiteStore(path))
    assert again.latest("s").schema == avro(A) and again.get_compatibility("s") == "FULL"
    assert again.register("t", avro(A)).id == 1
    again.close()
