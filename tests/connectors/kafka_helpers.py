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


async def consume_all(bootstrap: str, topic: str, expected: int | None = None, timeout: float = 60.0):
    """Every message of ``topic`` from the beginning: stops at ``expected`` messages or, without it, once
    every partition is read up to its high-water mark (the end of its log at the last fetch); after
    ``timeout`` seconds it returns what it has.

    (The end is the high-water mark, not a pause in arrivals: a fetch that stalls a second or two on a
    loaded machine must not cut the read short. Tansu's ListOffsets for the log end is wrong; the fetch
    high-water mark is right.)"""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    out = []
    next_offsets = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for tp, messages in batch.items():
                out.extend(messages)
                next_offsets[tp] = messages[-1].offset + 1
            if expected is not None:
                if len(out) >= expected:
                    break
            elif _read_to_the_end(consumer, next_offsets):
                break
    finally:
        await consumer.stop()
    return out


def _read_to_the_end(consumer: AIOKafkaConsumer, next_offsets: dict) -> bool:
    assignment = consumer.assignment()
    if not assignment:
        return False
    for tp in assignment:
        highwater = consumer.highwater(tp)
        if highwater is None or next_offsets.get(tp, 0) < highwater:
            return False
    return True
