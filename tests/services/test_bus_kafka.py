"""KafkaBus on the real test broker: round trip, group resume after restart, dead letters, dedup."""

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from engine.services.bus import KafkaBus
from engine.services.envelope import Envelope
from tests.waiting import wait_until

pytestmark = pytest.mark.kafka


def env(i):
    return Envelope(id=f"e{i}", source="test", time=i, payload={"i": i})


async def read_until(consumer, done, timeout=60.0) -> list:
    """``(partition, message)`` pairs from ``consumer`` until ``done(pairs)`` or ``timeout`` seconds (a fresh
    consumer's start and first fetch can take seconds on a loaded machine)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pairs: list = []
    while not done(pairs) and loop.time() < deadline:
        for tp, messages in (await consumer.getmany(timeout_ms=250)).items():
            pairs.extend((tp.partition, m) for m in messages)
    return pairs


async def test_kafka_bus_at_least_once_resume_and_dead_letters(bootstrap_servers):
    prefix = f"it-{uuid.uuid4().hex[:8]}."
    # Short group timeouts: a consumer re-joining its group waits for the old member otherwise.
    fast_rejoin = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 300, "max_poll_interval_ms": 2000}
    async with KafkaBus(bootstrap_servers, topic_prefix=prefix, partitions=2, poll_timeout_ms=100,
                        consumer_options=fast_rejoin) as bus:
        await bus.publish("raw", [env(i) for i in range(10)])
        got = []

        async def collect(batch):
            got.extend(batch)

        sub = await bus.subscribe("raw", "g", collect)
        await wait_until(lambda: len(got) == 10)
        await sub.stop()
        await bus.publish("raw", [env(i) for i in range(10, 15)] + [env(3)])  # e3 again: a redelivery
        # An undecodable message goes to the dead-letter topic, not into the handler.
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
        await producer.start()
        await producer.send_and_wait(bus.topic("raw"), b"\xc1 not msgpack")
        await producer.stop()

        again = []

        async def collect_again(batch):
            again.extend(batch)

        sub = await bus.subscribe("raw", "g", collect_again)
        await wait_until(lambda: len(again) >= 5 and sub.dead_lettered == 1)
        await sub.stop()
        # Resumed after its commit: nothing from the first run is seen twice, except e3 republished.
        assert sorted(e.payload["i"] for e in again) == [3, 10, 11, 12, 13, 14]
        assert sorted(e.payload["i"] for e in got) == list(range(10))

        # Raw dead letters are not envelopes, so read the topic with a plain consumer.
        from aiokafka import AIOKafkaConsumer
        consumer = AIOKafkaConsumer(bus.topic("raw.dead-letter"), bootstrap_servers=bootstrap_servers,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            records = [m for _, m in await read_until(consumer, lambda pairs: pairs)]
        finally:
            await consumer.stop()
        assert records, "the dead letter never arrived"
        assert records[0].value == b"\xc1 not msgpack"
        assert b"not a valid envelope" in dict(records[0].headers)["error"]


async def test_partition_key_header_keeps_a_key_on_one_partition(bootstrap_servers):
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    from engine.services.bus import PARTITION_KEY_HEADER
    from engine.services.envelope import decode

    prefix = f"pk-{uuid.uuid4().hex[:8]}."
    async with KafkaBus(bootstrap_servers, topic_prefix=prefix, partitions=4) as bus:
        await bus.publish("orders", [Envelope(id=f"o{i}", source="t", time=i, payload={"user": f"u{i % 3}"},
                                              headers={PARTITION_KEY_HEADER: f"u{i % 3}"}) for i in range(30)])
        topic = bus.topic("orders")
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest")
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, p) for p in range(4)])
            seen = [(p, decode(m.value)) for p, m in await read_until(consumer, lambda pairs: len(pairs) >= 30)]
        finally:
            await consumer.stop()
    assert len(seen) == 30  # every envelope is checked below, not only those that came within a deadline
    partitions = {}
    for partition, env in seen:
        partitions.setdefault(env.payload["user"], set()).add(partition)
    assert all(len(p) == 1 for p in partitions.values()), partitions
    for user in partitions:  # per-key order is publish order
        times = [env.time for _, env in seen if env.payload["user"] == user]
        assert times == sorted(times)
