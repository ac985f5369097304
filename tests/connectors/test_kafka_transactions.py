"""Transactional KafkaSink (exactly-once): needs a broker with transactions.

The Tansu test broker does not implement InitProducerId, so these tests probe the broker and skip with
that reason there; against a broker with transactions they run in full.
"""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from connectors.kafka import KafkaSink, KafkaSource
from engine import BoundedOutOfOrderness, Dataflow, Tumbling, agg
from tests.connectors.kafka_helpers import produce_json

pytestmark = pytest.mark.kafka

NEEDS = "needs a broker with Kafka transactions (InitProducerId); the Tansu test broker does not implement it"


async def broker_supports_transactions(bootstrap: str) -> bool:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"probe-{uuid.uuid4().hex}")
    try:
        await asyncio.wait_for(producer.start(), timeout=10)
        return True
    except Exception:
        return False
    finally:
        await producer.stop()


async def test_transactional_sink_output_is_visible_only_when_committed(bootstrap_servers, topic_factory, tmp_path):
    if not await broker_supports_transactions(bootstrap_servers):
        pytest.skip(NEEDS)
    source_topic, out_topic = await topic_factory(), await topic_factory()
    records = [{"user": f"u{i % 3}", "ts": i * 10, "amount": 1} for i in range(300)]
    await produce_json(bootstrap_servers, source_topic, records)
    flow = Dataflow("kafka-transactions")
    (
        flow.source(KafkaSource(source_topic, bootstrap_servers, bounded=True), timestamp="ts",
                    watermark=BoundedOutOfOrderness(0))
        .key_by("user")
        .window(Tumbling(1_000))
        .aggregate(count=agg.count())
        .sink(KafkaSink(out_topic, bootstrap_servers, key="key", transactional_id=f"tx-{uuid.uuid4().hex}"))
    )
    await flow.run_async(checkpoint_dir=tmp_path / "ckpt", checkpoint_interval=0.01)
    consumer = AIOKafkaConsumer(out_topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest",
                                isolation_level="read_committed")
    await consumer.start()
    try:
        got = []
        for _ in range(50):
            for messages in (await consumer.getmany(timeout_ms=200)).values():
                got += [msgspec.json.decode(m.value) for m in messages]
    finally:
        await consumer.stop()
    assert sorted((r["key"], r["start"], r["count"]) for r in got) == sorted(
        (f"u{k}", s, sum(1 for r in records if r["user"] == f"u{k}" and s <= r["ts"] < s + 1000))
        for k in range(3) for s in range(0, 3000, 1000)
    )
