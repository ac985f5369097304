"""Kafka connectors with data contracts: validated consumption, registered and framed production."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from connectors.kafka import KafkaSink, KafkaSource
from connectors.memory import CollectSink
from engine import Dataflow
from engine.contracts import SchemaRegistry, loads_contract
from engine.contracts.wire import ContractDeserializer
from tests.connectors.kafka_helpers import consume_all, produce

pytestmark = pytest.mark.kafka

CONTRACT = loads_contract(
    """
name: payments
version: 1.0.0
fields:
  - {name: id, type: string, constraints: {pattern: "^p-[0-9]+$"}}
  - {name: ts, type: integer}
  - {name: amount, type: float, constraints: {gt: 0}}
"""
)


async def test_contract_checked_source_and_registered_sink(bootstrap_servers, topic_factory):
    source_topic, out_topic = await topic_factory(), await topic_factory()
    messages = [
        {"id": "p-1", "ts": 1, "amount": 5.0},
        {"id": "x-2", "ts": 2, "amount": 5.0},  # pattern violated
        {"id": "p-3", "ts": 3, "amount": 0},  # amount must be > 0
        {"id": "p-4", "ts": 4, "amount": 1.25},
    ]
    await produce(bootstrap_servers, source_topic, [(0, m["ts"], None, msgspec.json.encode(m)) for m in messages])
    registry = SchemaRegistry()
    flow = Dataflow("kafka-contracts")
    payments = flow.source(KafkaSource(source_topic, bootstrap_servers, bounded=True, contract=CONTRACT), timestamp="ts")
    payments.sink(KafkaSink(out_topic, bootstrap_servers, key="id", contract=CONTRACT, registry=registry))
    payments.dead_letters().sink(dead := CollectSink())
    await asyncio.wait_for(flow.run_async(), timeout=60)

    bad = sorted((letter.record.offset, letter.error) for letter in dead.results)
    assert [offset for offset, _ in bad] == [1, 2]
    assert "id" in bad[0][1] and "violates contract 'payments' 1.0.0" in bad[0][1]
    assert "amount" in bad[1][1]

    out = await consume_all(bootstrap_servers, out_topic, expected=2)
    registered = registry.latest(f"{out_topic}-value")  # the sink registered the contract's schema
    assert all(m.value[0] == 0 for m in out)  # Confluent magic byte, then the 4-byte schema id
    assert {int.from_bytes(m.value[1:5], "big") for m in out} == {registered.id}
    decoded = ContractDeserializer(CONTRACT, registry, output="dict").deserialize_many([m.value for m in out])
    assert [r["id"] for r in decoded.valid] == ["p-1", "p-4"] and not decoded.invalid
