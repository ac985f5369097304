from __future__ import annotations

import textwrap

import pytest


@pytest.fixture
def write_file(tmp_path):
    """Factory: write dedented text to a file under tmp_path and return its path."""

    def write(name: str, text: str):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


ORDERS_YAML = """
name: orders
version: 1.0.0
owner: checkout
description: Orders placed in the web shop
status: active
tags: [sales, pii]
fields:
  - name: order_id
    type: string
    constraints: {min_length: 3, max_length: 32, pattern: "^o-[0-9]+$"}
  - name: user_id
    type: integer
    constraints: {ge: 1}
  - name: amount
    type: float
    constraints: {ge: 0, le: 100000}
  - name: currency
    type: string
    constraints: {allowed_values: [EUR, USD, GBP]}
  - name: state
    type: enum
    symbols: [NEW, PAID, SHIPPED]
  - name: items
    type: array
    constraints: {min_length: 1}
    items:
      type: object
      fields:
        - {name: sku, type: string}
        - {name: qty, type: integer, constraints: {ge: 1}}
  - name: note
    type: string
    nullable: true
    required: false
  - name: express
    type: boolean
    default: false
  - name: ts
    type: timestamp
sla: {latency: 5s, freshness: 1h, availability: "99.9%", retention: 7d}
quality:
  - {rule: not_null, field: order_id}
  - {rule: between, field: amount, min: 0, max: 5000, allowed_failure_fraction: 0.01, severity: warning}
  - {rule: unique, field: order_id}
  - {rule: row_count, min: 1}
"""


@pytest.fixture
def orders_yaml():
    return ORDERS_YAML


@pytest.fixture
def orders(orders_yaml):
    from engine.contracts import loads_contract

    return loads_contract(orders_yaml)


@pytest.fixture
def order_record():
    def make(**overrides):
        rec = {
            "order_id": "o-123", "user_id": 7, "amount": 12.5, "currency": "EUR", "state": "PAID",
            "items": [{"sku": "A1", "qty": 2}], "ts": 1_700_000_000_000,
        }
        rec.update(overrides)
        return rec

    return make
