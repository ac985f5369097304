"""Contracts from Avro schemas."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings

from engine.cli import main
from engine.contracts import ContractDefinitionError
from engine.contracts.importing import contract_from_avro

from tests.contracts.strategies import contracts


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(contracts())
def test_avro_export_imports_back_to_the_same_avro(contract):
    avro = contract.to_avro()
    again = contract_from_avro(avro)
    assert again.to_avro() == avro


def test_avro_types_map_to_contract_types():
    schema = {"type": "record", "name": "Click", "namespace": "web", "doc": "page clicks", "fields": [
        {"name": "id", "type": "int", "doc": "click id"},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}, "default": 19000},
        {"name": "hash", "type": {"type": "fixed", "name": "H", "size": 4}},
        {"name": "ref", "type": ["null", "string"], "default": None},
        {"name": "blob", "type": "bytes", "default": "\u00ff"},
    ]}
    c = contract_from_avro(schema, version="2.0.0")
    assert (c.name, c.namespace, c.version, c.description) == ("Click", "web", "2.0.0", "page clicks")
    assert c.field("id").type.constraints.le == 2**31 - 1 and c.field("id").description == "click id"
    assert c.field("ts").type.type == "timestamp" and c.field("day").default == "2022-01-08"
    assert c.field("hash").type.constraints.min_length == 4
    assert c.field("ref").type.nullable and not c.field("ref").required
    rec = c.compile().validate_python({"id": 1, "ts": 5, "hash": "AAAAAA=="})
    assert rec.blob == b"\xff" and rec.ref is None


def test_unrepresentable_unions_are_refused_naming_the_field():
    schema = {"type": "record", "name": "R", "fields": [{"name": "v", "type": ["string", "long"]}]}
    with pytest.raises(ContractDefinitionError) as info:
        contract_from_avro(schema)
    assert info.value.path == "v" and "union" in str(info.value)


def test_import_command(tmp_path, capsys):
    path = tmp_path / "user.avsc"
    path.write_text(json.dumps({"type": "record", "name": "User", "fields": [{"name": "id", "type": "long"}]}))
    out = tmp_path / "user.yaml"
    assert main(["contracts", "import", str(path), "--version", "3.1.0", "-o", str(out)]) == 0
    assert "version: 3.1.0" in out.read_text()
    assert main(["contracts", "check", str(out), str(out)]) == 0
