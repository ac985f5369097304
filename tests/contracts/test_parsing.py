"""Loading contracts: formats, round trips, fingerprints, and clear load-time errors for bad input."""

from __future__ import annotations

import json

import pytest

from engine.contracts import (
    ContractDefinitionError,
    DataContract,
    Field,
    FieldType,
    dump_contract,
    load_contract,
    loads_contract,
)
from engine.errors import ContractError


def test_yaml_file_loads_with_every_section(write_file, orders_yaml):
    c = load_contract(write_file("orders.yaml", orders_yaml))
    assert c.name == "orders" and c.version == "1.0.0" and c.owner == "checkout"
    assert c.field_names == ("order_id", "user_id", "amount", "currency", "state", "items", "note", "express", "ts")
    assert c.field("express").required is False and c.field("express").default is False
    assert c.field("note").type.nullable and not c.field("note").required
    assert c.field("items").type.items.fields[1].type.constraints.ge == 1
    assert c.sla.latency_ms == 5000 and c.sla.freshness_ms == 3_600_000 and c.sla.retention_ms == 7 * 86_400_000
    assert c.sla.availability == 99.9
    assert [q.rule for q in c.quality] == ["not_null", "between", "unique", "row_count"]
    assert c.quality[1].severity == "warning" and c.quality[1].allowed_failure_fraction == 0.01


def test_json_and_yaml_files_round_trip(tmp_path, orders):
    for suffix in (".json", ".yaml"):
        path = tmp_path / f"orders{suffix}"
        dump_contract(orders, path)
        again = load_contract(path)
        assert again == orders
        assert again.fingerprint() == orders.fingerprint()
    json.loads((tmp_path / "orders.json").read_text())  # really JSON


def test_fingerprint_ignores_formatting_and_order_but_not_content(orders_yaml):
    a = loads_contract(orders_yaml)
    reordered = loads_contract(orders_yaml.replace("tags: [sales, pii]", "tags: [pii, sales]").replace(
        "allowed_values: [EUR, USD, GBP]", "allowed_values: [GBP, EUR, USD]"))
    as_json = loads_contract(json.dumps(a.to_dict(), indent=7), "json")
    mapping_form = loads_contract("""
        {name: orders, version: 1.0.0, fields: {b: {type: integer}, a: string}}""")
    list_form = loads_contract("""
        {name: orders, version: 1.0.0, fields: [{name: a, type: string}, {name: b, type: integer}]}""")
    assert a.fingerprint() == reordered.fingerprint() == as_json.fingerprint()
    assert mapping_form.fingerprint() == list_form.fingerprint()
    changed = loads_contract(orders_yaml.replace("ge: 1}", "ge: 2}", 1))
    assert changed.fingerprint() != a.fingerprint()
    # enum symbol order is meaningful (Avro), so it changes the fingerprint
    swapped = loads_contract(orders_yaml.replace("[NEW, PAID, SHIPPED]", "[PAID, NEW, SHIPPED]"))
    assert swapped.fingerprint() != a.fingerprint()


def test_nested_contract_reference_is_resolved_relative_to_the_file(write_file):
    write_file("address.yaml", """
        name: address
        version: 1.0.0
        fields: [{name: city, type: string}, {name: zip, type: string}]
    """)
    path = write_file("customer.yaml", """
        name: customer
        version: 2.1.0
        fields:
          - {name: id, type: integer}
          - {name: home, contract: address.yaml, nullable: true}
    """)
    c = load_contract(path)
    home = c.field("home").type
    assert home.type == "object" and home.nullable and [f.name for f in home.fields] == ["city", "zip"]
    assert c.compile().validate_python({"id": 1, "home": {"city": "Oslo", "zip": "0150"}}).home.city == "Oslo"


def test_contract_reference_cycle_is_refused(write_file):
    write_file("a.yaml", "name: a\nversion: 1.0.0\nfields: [{name: b, contract: b.yaml}]\n")
    write_file("b.yaml", "name: b\nversion: 1.0.0\nfields: [{name: a, contract: a.yaml}]\n")
    with pytest.raises(ContractDefinitionError, match="cycle"):
        load_contract(write_file("a.yaml", "name: a\nversion: 1.0.0\nfields: [{name: b, contract: b.yaml}]\n"))


BAD = [
    ("name: x\nversion: 1.0.0\nfields: [{name: a, type: strng}]", "unknown type 'strng'", "fields.a.type"),
    ("name: x\nversion: 1.0.0\nfields: [{name: a, type: integer, constraints: {ge: 10, le: 5}}]",
     "ge=10 and le=5 leave no valid value", "fields.a.constraints"),
    ("name: x\nversion: 1.0.0\nfields: [{name: a, type: float, constraints: {gt: 5, lt: 5}}]",
     "gt=5 and lt=5", "fields.a.constraints"),
    ("name: x\nversion: 1.0.0\nfields: [{name: o, type: object, fields: [{name: s, type: string, "
     "constraints: {min_length: 5, max_length: 2}}]}]", "min_length=5 is greater than max_length=2",
     "fields.o.fields.s.constraints"),
    ("name: x\nversion: 1.0.0\nfields: [{name: a, type: integer, default: -1, constraints: {ge: 0}}]",
     "default -1 violates", "fields.a.default"),
    ("name: x\nversion: 1.0.0\nfields: [{name: a, type: string, default: null}]", "default None violates",
     "fields.a.default"),
    ("name: x\nversion: 1.0.0\nfields: [{name: a, type: enum, symbols: [A, B], default: C}]", "default 'C'",
     "fields.a.default"),
    ("name: x\nversion: 1.0.0\nfields: [{name: a, type: string, constraints: {allowed_values: [ab, abcdef], "
     "max_length: 3}}]", "allowed value 'abcdef'", "fields.a.constraints.allowed_values"),
    ("name: x\nversion: 1.0.0\nfields: [{name: a, type: string, constraints: {ge: 1}}]",
     "constraint 'ge' does not apply to type 'string'", "fields.a.constraints.ge"),
    ("name: x\nversion: 1.0.0\nfields: [{name: a, type: string, constraints: {pattern: '[a-'}}]",
     "invalid regular expression", "fields.a.constraints.pattern"),
    ("name: x\nversion: 1.0.0\nfields: [{name: a, type: integer, constraints: {multiple_of: 0}}]",
     "multiple_of must be > 0", "fields.a.constraints.multiple_of"),
    ("name: x\nversion: 1.0.0\nfields: [{name: a, type: string, constraints: {frobnicate: 1}}]",
     "unknown constraints ['frobnicate']", "fields.a.constraints"),
    ("name: x\nversion: 1.0.0\nfields: [{name: a, type: integer}, {name: a, type: string}]",
     "duplicate field name 'a'", "fields.a"),
    ("name: x\nversion: 1.0.0\nfields: [{name: a-b, type: integer}]", "field name must match", "fields.a-b"),
    ("name: x\nversion: 1.0.0\nfields: [{name: a, type: enum, symbols: [A, A]}]", "duplicate enum symbols",
     "fields.a.symbols"),
    ("name: x\nversion: 1.0.0\nfields: [{name: a, type: array}]", "an array needs 'items'", "fields.a"),
    ("name: x\nversion: 1.0.0\nfields: [{name: a, type: map, values: {type: nope}}]", "unknown type 'nope'",
     "fields.a.values.type"),
    ("name: x\nversion: 1.0.0\nfields: [{name: a, type: string, symbols: [A]}]", "'symbols' only applies",
     "fields.a.symbols"),
    ("name: x\nversion: 1.0.0\nfields: [{name: a, type: integer, required: true, default: 1}]",
     "a required field cannot have a default", "fields.a"),
    ("name: x\nversion: 1.0.0\nfields: [{name: a, type: integer, colour: red}]", "unknown field keys ['colour']",
     "fields.a"),
    ("name: x\nversion: 1.0\nfields: [{name: a, type: integer}]", "semantic version", "version"),
    ("name: x\nversion: 1.0.0\nstatus: alive\nfields: [{name: a, type: integer}]", "status must be one of",
     "status"),
    ("name: x\nversion: 1.0.0\nfields: []", "at least one field", "fields"),
    ("name: x\nfields: [{name: a, type: integer}]", "missing required key 'version'", ""),
    ("name: x\nversion: 1.0.0\nfields: [{name: a, type: integer}]\nsla: {latency: soon}", "expected a duration",
     "sla.latency"),
    ("name: x\nversion: 1.0.0\nfields: [{name: a, type: integer}]\nsla: {availability: 120}",
     "availability is a percentage", "sla.availability"),
    ("name: x\nversion: 1.0.0\nfields: [{name: a, type: integer}]\nquality: [{rule: not_null, field: b}]",
     "unknown field 'b'", "quality[0].field"),
    ("name: x\nversion: 1.0.0\nfields: [{name: a, type: integer}]\nquality: [{rule: between, field: a, min: 5, max: 1}]",
     "min=5 is greater than max=1", "quality[0]"),
    ("name: x\nversion: 1.0.0\nfields: [{name: a, type: integer}]\nquality: [{rule: freshness, field: a, max_age: 1h}]",
     "needs a timestamp field", "quality[0].field"),
    ("name: x\nversion: 1.0.0\nfields: [{name: a, type: integer}]\nquality: [{rule: sparkle, field: a}]",
     "unknown quality rule 'sparkle'", "quality[0].rule"),
    ("name: x\nversion: 1.0.0\nfields: [{name: a, type: integer}]\nquality: [{rule: not_null, field: a, "
     "allowed_failure_fraction: 2}]", "allowed_failure_fraction must be in [0, 1]", "quality[0].allowed_failure_fraction"),
    ("name: x\nversion: 1.0.0\nfields: [{name: c, type: string}]\nquality: [{rule: in_set, field: c, values: [NO, SE]}]",
     "quote the value", "quality[0].values"),
    ("name: x\nversion: 1.0.0\nfields: [{name: c, type: string, constraints: {allowed_values: [yes, maybe]}}]",
     "quote the value", "fields.c.constraints.allowed_values"),
    ("- just\n- a list\n", "a contract must be a mapping", ""),
    ("name: x\nversion: 1.0.0\nfields: [{name: a, type: integer\n", "malformed YAML", ""),
]


@pytest.mark.parametrize(("text", "message", "path"), BAD, ids=[b[1][:40] for b in BAD])
def test_bad_contract_is_refused_at_load_time_naming_the_path(text, message, path):
    with pytest.raises(ContractDefinitionError) as info:
        loads_contract(text, source="bad.yaml")
    err = info.value
    assert message in str(err)
    assert err.path == path
    assert str(err).startswith("bad.yaml: ")
    assert isinstance(err, ContractError)


def test_malformed_json_file_names_file_and_line(write_file):
    path = write_file("c.json", '{"name": "x",\n "version": }')
    with pytest.raises(ContractDefinitionError, match=r"c\.json: malformed JSON: .* line 2"):
        load_contract(path)


def test_missing_file_is_a_definition_error(tmp_path):
    with pytest.raises(ContractDefinitionError, match="cannot read contract file"):
        load_contract(tmp_path / "nope.yaml")


def test_build_in_code_runs_the_same_checks():
    ok = DataContract.build(name="t", version="0.1.0", fields=(Field("a", FieldType("integer")),))
    assert ok.field_names == ("a",)
    from engine.contracts import Constraints

    with pytest.raises(ContractDefinitionError, match="ge=3 and lt=3"):
        DataContract.build(name="t", version="0.1.0",
                           fields=(Field("a", FieldType("integer", constraints=Constraints(ge=3, lt=3))),))


def test_example_contract_loads_validates_and_exports():
    from pathlib import Path

    path = Path(__file__).parents[2] / "examples" / "contracts" / "orders.yaml"
    c = load_contract(path)
    record = {"order_id": "o-1", "user_id": 1, "amount": 3.5, "currency": "EUR", "state": "NEW",
              "items": [{"sku": "A", "qty": 1}], "ts": "2024-05-01T12:00:00Z"}
    assert c.compile().validate_python(record).coupon is None
    assert c.to_avro()["namespace"] == "shop"


def test_contract_structs_round_trip_through_msgspec(orders):
    import msgspec

    for module in (msgspec.json, msgspec.msgpack):
        assert module.decode(module.encode(orders), type=DataContract) == orders
