"""Quality rules taken from a data contract (the contracts layer feeding the quality service)."""

from __future__ import annotations

import pytest

from engine.contracts import loads_contract
from engine.services.rules import Between, InSet, NotNull, Regex, RuleDefinitionError, RowCount, rules_from_contract

CONTRACT = loads_contract(
    """
name: orders
version: 2.0.0
fields:
  - {name: id, type: string}
  - {name: amount, type: float}
  - {name: currency, type: string}
quality:
  - {rule: not_null, field: id}
  - {rule: between, field: amount, min: 0, max: 1000, severity: warning, allowed_failure_fraction: 0.1}
  - {rule: in_set, field: currency, values: [EUR, USD]}
  - {rule: regex, field: id, pattern: "^o-"}
  - {rule: row_count, min: 1}
"""
)


def test_contract_quality_rules_map_one_to_one():
    rules = rules_from_contract(CONTRACT)
    assert [type(r) for r in rules] == [NotNull, Between, InSet, Regex, RowCount]
    between = rules[1]
    assert (between.field, between.min, between.max, between.severity, between.allowed_failure_fraction) == (
        "amount", 0, 1000, "warn", 0.1,
    )
    assert rules[2].values == ["EUR", "USD"]
    assert rules[3].pattern == "^o-" and rules[0].severity == "error"


def test_a_platform_quality_service_can_take_its_rules_from_a_contract_file(tmp_path):
    from engine.contracts import dump_contract
    from engine.services.config import parse_config
    from engine.services.bus import InMemoryBus
    from engine.services.platform import make_service

    dump_contract(CONTRACT, tmp_path / "orders.yaml")
    config = parse_config(
        {
            "services": [
                {"kind": "quality", "name": "q", "input": "raw", "output": "clean", "contract": "orders.yaml"},
            ]
        },
        base_dir=str(tmp_path),
    )
    service = make_service(config, config.services[0], InMemoryBus())
    assert [type(r) for r in service.rules] == [NotNull, Between, InSet, Regex, RowCount]


def test_unknown_contract_rule_is_refused_by_name():
    class Fake:
        name = "x"
        quality = [type("R", (), {"rule": "median_between", "field": "a", "severity": "error", "allowed_failure_fraction": 0})()]

    with pytest.raises(RuleDefinitionError, match="median_between"):
        rules_from_contract(Fake())
