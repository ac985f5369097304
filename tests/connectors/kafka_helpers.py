"""Produce to and consume from the test broker with plain aiokafka (the tests' independent view)."""

from __future__ import annotations

import asyncio

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def produce(bootstrap: str, topic: str, messages: list[tuple[int, int, bytes | None, bytes | None]]) -> None:
    """``messages``: ``(partition, timestamp_ms, key, value)``, sent in order."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=key, partition=partition, timestamp_ms=ts)
            for partition, ts, key, value in messages
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
