"""Produce to and consume from the test broker with plain aiokafka (the tests' independent view)."""

from __future__ import annotations

import asyncio
from typing import NamedTuple

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


class Message(NamedTuple):
    """The attributes of an aiokafka ``ConsumerRecord`` that KafkaSource reads (for scripted consumers)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple = ()


async def produce(bootstrap: str, topic: str, messages: list[tuple]) -> None:
    """``messages``: ``(partition, timestamp_ms, key, value)`` or ``(partition, timestamp_ms, key, value,
    headers)``, sent in order."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, message[3], key=message[2], partition=message[0], timestamp_ms=message[1],
                                headers=list(message[4]) if len(message) > 4 else None)
            for message in messages
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def produce_json(bootstrap: str, topic: str, records: list[dict], partition_of=lambda r: 0) -> None:
    await produce(
        bootstrap, topic, [(partition_of(r), r["ts"], None, msgspec.json.encode(r)) for r in records]
    )


async def consume_all(bootstrap: str, topic: str, expected: int | None = None, timeout: float = 20.0, idle: float = 1.5):
    """Every message of ``topic`` from the beginning: stops at ``expected`` messages, or after ``idle``
    seconds without new ones."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    out = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last_new = loop.time()
    try:
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                out.extend(messages)
                last_new = loop.time()
            if expected is not None and len(out) >= expected:
                break
            if expected is None and out and loop.time() - last_new > idle:
                break
    finally:
        await consumer.stop()
    return out
