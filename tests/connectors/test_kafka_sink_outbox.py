"""KafkaSink's outbox: batches are handed to the producer by a feeder task, so a write does not wait for
produce round trips, only for room in the outbox. A scripted producer stands in for aiokafka's here (the
queueing is the sink's own logic; the real producer is exercised in test_kafka.py against the broker)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import connectors.kafka as kafka_module
from connectors.kafka import KafkaSink
from engine.batch import Batch
from engine.errors import ConnectorError

# How long a step that must not wait for the producer may take before the test calls it stuck: a hang
# guard, not a speed check (a loaded CI machine can stall the process for a second).
HANG = 30


class ScriptedProducer:
    """``send_batch`` waits while ``gate`` is closed (as aiokafka's waits for the previous batch of the
    partition to drain), then returns a delivery future the test resolves or fails."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.sent: list[tuple[int, list[bytes]]] = []
        self.deliveries: list[asyncio.Future] = []
        self.refuse: Exception | None = None

    async def send_batch(self, builder, topic, *, partition):
        await self.gate.wait()
        if self.refuse is not None:
            raise self.refuse
        from aiokafka.record.default_records import DefaultRecordBatch

        self.sent.append((partition, [r.value for r in DefaultRecordBatch(bytes(builder._build()))]))
        future = asyncio.get_running_loop().create_future()
        self.deliveries.append(future)
        return future

    async def start(self):
        pass

    async def partitions_for(self, topic):
        return {0, 1}

    async def stop(self):
        pass


async def opened_sink(monkeypatch, outbox_bytes: int) -> tuple[KafkaSink, ScriptedProducer]:
    monkeypatch.setattr(kafka_module, "OUTBOX_BYTES", outbox_bytes)
    sink = KafkaSink("out", "localhost:1", value=lambda r: r["v"], producer_options={"max_batch_size": 200})
    producer = ScriptedProducer()
    monkeypatch.setattr("aiokafka.AIOKafkaProducer", lambda **options: producer)
    await sink.open()
    return sink, producer


def batch_of(values: list[bytes]) -> Batch:
    ts = np.arange(1, len(values) + 1, dtype=np.int64)
    return Batch(ts, ts, records=[{"v": v} for v in values])


async def test_writes_go_on_while_the_producer_is_busy_until_the_outbox_is_full(monkeypatch):
    sink, producer = await opened_sink(monkeypatch, outbox_bytes=1_500)
    producer.gate.clear()  # the producer takes nothing for now
    values = [b"%03d" % i * 10 for i in range(40)]  # 30 bytes each: several 200-byte batches per write
    await asyncio.wait_for(sink.write(batch_of(values[:20])), timeout=HANG)  # queued, not waiting for the producer
    assert producer.sent == [] and sink._outbox
    blocked = asyncio.ensure_future(sink.write(batch_of(values[20:])))
    await asyncio.sleep(0.05)
    assert not blocked.done()  # the outbox holds more than OUTBOX_BYTES: the write waits for room
    producer.gate.set()
    await asyncio.wait_for(blocked, timeout=HANG)
    flushing = asyncio.ensure_future(sink.pre_commit(1))
    await asyncio.sleep(0.05)
    assert not flushing.done()  # the flush waits for every delivery
    for future in producer.deliveries:
        future.set_result(None)
    await asyncio.wait_for(flushing, timeout=HANG)
    # every value once, each partition's in the order written (unkeyed batches alternate partitions)
    assert sorted(v for _, vs in producer.sent for v in vs) == sorted(values)
    for partition in (0, 1):
        got = [v for p, vs in producer.sent if p == partition for v in vs]
        assert got == sorted(got)
    await sink.close()


async def test_a_failed_delivery_fails_the_next_write_or_flush(monkeypatch):
    sink, producer = await opened_sink(monkeypatch, outbox_bytes=10_000)
    await sink.write(batch_of([b"a" * 30] * 3))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    producer.deliveries[0].set_exception(RuntimeError("broker said no"))
    with pytest.raises(RuntimeError, match="broker said no"):
        await sink.write(batch_of([b"b"]))
    await sink.close()


async def test_a_refused_hand_over_fails_the_flush_with_a_clear_error(monkeypatch):
    sink, producer = await opened_sink(monkeypatch, outbox_bytes=10_000)
    producer.refuse = OSError("connection reset")
    await sink.write(batch_of([b"x" * 30] * 3))
    with pytest.raises(ConnectorError, match=r"KafkaSink\(out, at-least-once\): producing failed: connection reset"):
        await sink.pre_commit(1)
    await sink.close()


async def test_abort_drops_what_was_not_handed_over(monkeypatch):
    sink, producer = await opened_sink(monkeypatch, outbox_bytes=10_000)
    producer.gate.clear()
    await sink.write(batch_of([b"y" * 30] * 20))
    await sink.abort()
    producer.gate.set()
    await asyncio.sleep(0.01)
    assert producer.sent == [] and not sink._outbox and sink._feeder is None
    await sink.close()
