"""Quality rules over batches, and the stream-facing batch validator."""

from __future__ import annotations

import doctest

import msgspec
import pytest

from engine.contracts import loads_contract
from engine.contracts.quality import check_quality
from engine.contracts.streams import BatchValidator
from engine.errors import RecordError

QUALITY = """
name: payments
version: 2.0.0
fields:
  - {name: id, type: string}
  - {name: amount, type: float, nullable: true}
  - {name: country, type: string, required: false}
  - {name: ts, type: timestamp}
quality:
  - {rule: not_null, field: amount, allowed_failure_fraction: 0.25}
  - {rule: between, field: amount, min: 0, max: 100, severity: warning}
  - {rule: in_set, field: country, values: ['NO', SE, DK], allowed_failure_fraction: 0.5}
  - {rule: regex, field: id, pattern: "^p[0-9]+$"}
  - {rule: unique, field: id}
  - {rule: freshness, field: ts, max_age: 1m}
  - {rule: row_count, min: 3, max: 10}
"""


def test_quality_rules_count_failures_against_allowed_fractions():
    c = loads_contract(QUALITY)
    now = 1_700_000_100_000
    rows = [
        {"id": "p1", "amount": 10.0, "country": "NO", "ts": now - 5_000},
        {"id": "p2", "amount": None, "country": "SE", "ts": now - 90_000},
        {"id": "p2", "amount": 250.0, "ts": now - 30_000},
        {"id": "x9", "amount": 1.0, "country": "US", "ts": "2023-11-14T22:13:00Z"},
    ]
    report = check_quality(c, rows, now_ms=now)
    by = {r.rule: r for r in report.results}
    assert (by["not_null(amount)"].failures, by["not_null(amount)"].passed) == (1, True)  # 25% allowed
    assert (by["between(amount)"].failures, by["between(amount)"].passed) == (2, False)  # null + 250
    assert by["between(amount)"].severity == "warning"
    assert (by["in_set(country)"].failures, by["in_set(country)"].passed) == (2, True)  # missing + US
    assert (by["regex(id)"].failures, by["regex(id)"].passed) == (1, False)
    assert (by["unique(id)"].failures, by["unique(id)"].passed) == (1, False)
    assert by["freshness(ts)"].passed and by["row_count"].passed
    assert not report.passed
    assert [r.rule for r in report.failed] == ["between(amount)", "regex(id)", "unique(id)"]
    assert "FAILED" in str(report) and "[warn] between(amount)" in str(report)
    stale = check_quality(c, rows[:1], now_ms=now + 3_600_000)
    assert not {r.rule: r for r in stale.results}["freshness(ts)"].passed
    assert not {r.rule: r for r in stale.results}["row_count"].passed


def test_quality_over_validated_structs_and_nested_fields():
    c = loads_contract("""
        name: t
        version: 1.0.0
        fields: [{name: user, type: object, fields: [{name: email, type: string, required: false}]}]
        quality: [{rule: not_null, field: user.email}]
    """)
    valid, _ = c.compile().validate_many([b'{"user": {"email": "a@b"}}', b'{"user": {}}'])
    [result] = check_quality(c, valid).results
    assert (result.failures, result.rows, result.passed) == (1, 2, False)


def test_batch_validator_returns_dicts_and_dead_letters(orders, order_record):
    check = BatchValidator(orders, step="orders-in")
    good = msgspec.json.encode(order_record())
    valid, dead = check([good, b"{oops", order_record(quantity=None, user_id=-5)])
    assert valid == [{**order_record(), "express": False}]
    assert [d.index for d in dead] == [1, 2]
    letter = dead[1].to_dict()
    assert letter["step"] == "orders-in" and letter["contract"] == "orders" and letter["version"] == "1.0.0"
    assert letter["errors"][0]["path"] == "user_id" and letter["errors"][0]["value"] == "-5"
    assert dead[0].to_dict()["record"] == "{oops"
    assert check.metrics() == {"valid_records": 1, "invalid_records": 2}


def test_batch_validator_raise_mode_names_step_field_and_value(orders, order_record):
    check = BatchValidator(orders, step="orders-in", on_invalid="raise")
    with pytest.raises(RecordError) as info:
        check([order_record(), order_record(currency="JPY")])
    err = info.value
    assert (err.step, err.field, err.value) == ("orders-in", "currency", "JPY")
    assert "record 1" in str(err) and "dead-letter" in str(err)


def test_batch_validator_reads_confluent_frames(orders, order_record):
    from engine.contracts.registry import SchemaRegistry
    from engine.contracts.wire import ContractSerializer

    registry = SchemaRegistry()
    frames, _ = ContractSerializer(orders, registry, "orders-value").serialize_many([order_record()] * 3)
    check = BatchValidator(orders, wire_format=True, registry=registry)
    valid, dead = check(frames + [b"\x01\x00\x00\x00\x01{}"])
    assert len(valid) == 3 and valid[0]["order_id"] == "o-123"
    assert "magic byte" in dead[0].reason


def test_module_doctests():
    import engine.contracts.streams as module

    failures, tried = doctest.testmod(module)
    assert tried > 0 and failures == 0
