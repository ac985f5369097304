"""The test broker itself: a produce/consume round trip through aiokafka (guards the fixture)."""

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

pytestmark = pytest.mark.kafka


async def test_broker_round_trip_over_partitions(bootstrap_servers, topic_factory):
    topic = await topic_factory(partitions=3)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
    await producer.start()
    try:
        for i in range(9):
            await producer.send_and_wait(topic, f"m{i}".encode(), partition=i % 3)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest")
    await consumer.start()
    received = []
    try:
        for _ in range(50):
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                received.extend((m.partition, m.value) for m in messages)
            if len(received) >= 9:
                break
    finally:
        await consumer.stop()
    assert sorted(received) == sorted((i % 3, f"m{i}".encode()) for i in range(9))
