"""KafkaSource across consumer-group rebalances, Kafka-free: a scripted consumer stands in for aiokafka's.

aiokafka puts a new assignment in place (and starts fetching it, from the group's committed offset) before
it calls ``on_partitions_assigned``, and runs that callback in its coordinator task, concurrently with
``getmany``. The source must still hand the runtime, per partition, an announcement at the position the
partition resumes from, then exactly the records from there on: no record before the announcement, none
skipped, none twice. In scale-out runs that position is the latest checkpoint holding the partition's
state (``resume_positions``), whatever the group committed. (A stale announcement, with the records
then starting at the group's older offset, made the scale-out test count records twice.)

Every test runs twice: with one ``getmany`` per micro-batch, and with slices of 3 records (the source
polls in slices and assembles micro-batches from them), so rebalance callbacks also run between the
slices of one micro-batch.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
from aiokafka import TopicPartition

from connectors import kafka as kafka_module
from connectors.kafka import KafkaSource
from engine.errors import ConnectorError
from engine.io import SourceChunk
from tests.connectors.kafka_helpers import Message

TOPIC = "events"


class ScriptedConsumer:
    """The part of ``AIOKafkaConsumer`` that KafkaSource uses, with aiokafka's rebalance order.

    ``lengths``: messages per partition (message ``o`` has the value ``{"offset": o}``). While ``slow``
    polls remain, the assignment callback waits in its awaits (``committed``, or the source's
    ``resume_positions`` through `gate`), as a callback talking to the broker or reading checkpoints
    does; meanwhile ``getmany`` hands out records of the new assignment only when ``fetch_while_slow``.
    """

    def __init__(self, lengths: dict[int, int]) -> None:
        self.lengths = lengths
        self.fetch: dict[TopicPartition, int] = {}  # the assignment and each partition's fetch position
        self.group_offsets: dict[int, int] = {}
        self.listener: Any = None
        self.slow = 0
        self.fetch_while_slow = False
        self.settle_mid_poll = False  # the callback finishes while `read` hands out the poll it returns
        self._settled = asyncio.Event()
        self._settled.set()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def subscribe(self, topics, listener) -> None:
        self.listener = listener

    def assignment(self) -> frozenset:
        return frozenset(self.fetch)

    async def gate(self) -> None:
        await self._settled.wait()

    async def committed(self, tp: TopicPartition) -> int | None:
        await self.gate()
        return self.group_offsets.get(tp.partition)

    async def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.fetch[tp] = 0

    async def position(self, tp: TopicPartition) -> int:
        return self.fetch[tp]

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if tp not in self.fetch:  # aiokafka raises IllegalStateError too
            raise AssertionError(f"seek of {tp}, which is not assigned")
        self.fetch[tp] = offset

    async def getmany(self, *partitions, timeout_ms: int = 0, max_records: int | None = None) -> dict:
        for _ in range(3):  # the coordinator task gets its turns
            await asyncio.sleep(0)
        if self.slow:
            self.slow -= 1
            if not self.slow:
                self._settled.set()  # the callback finishes now; the next fetch response comes after it
                if not self.settle_mid_poll:
                    return {}
            elif not self.fetch_while_slow:
                return {}
        out = {}
        for tp in sorted(self.fetch):  # up to max_records per partition
            start = self.fetch[tp]
            end = min(self.lengths[tp.partition], start + (max_records or 10))
            if start < end:
                out[tp] = [Message(TOPIC, tp.partition, o, 1_000 + o, None, msgspec.json.encode({"offset": o}))
                           for o in range(start, end)]
                self.fetch[tp] = end
        return out

    async def commit(self, offsets) -> None:
        pass

    def rebalance(self, partitions: list[int], slow: int = 0, fetch_while_slow: bool = False) -> asyncio.Task:
        """Revoke everything, assign ``partitions`` (fetching from the group's offsets), then call back
        in a task of its own, the callback's awaits taking ``slow`` polls."""
        self.slow, self.fetch_while_slow = slow, fetch_while_slow
        if slow:
            self._settled.clear()

        async def run() -> None:
            await self.listener.on_partitions_revoked(set(self.fetch))
            self.fetch = {TopicPartition(TOPIC, p): self.group_offsets.get(p, 0) for p in partitions}
            await self.listener.on_partitions_assigned(set(self.fetch))

        return asyncio.create_task(run())


@pytest.fixture(autouse=True, params=[500, 3], ids=["one-slice", "slices-of-3"])
def poll_slice(request, monkeypatch) -> int:
    monkeypatch.setattr(kafka_module, "POLL_SLICE", request.param)
    return request.param


class ScriptedSource(KafkaSource):
    def __init__(self, consumer: ScriptedConsumer, checkpoints: dict[int, int] | None = None) -> None:
        super().__init__(TOPIC, "scripted:9092", group_id="g", batch_size=10)
        self.consumer = consumer
        self.scale_out = True
        self.resumed: list[list[int]] = []
        if checkpoints is not None:
            async def resume_positions(partitions: list[int]) -> dict[int, Any]:
                self.resumed.append(list(partitions))
                await consumer.gate()  # reading the checkpoint directory takes a while too
                return {p: checkpoints[p] for p in partitions if p in checkpoints}

            self.resume_positions = resume_positions

    def _new_consumer(self, consumer_class, options):
        return self.consumer


async def pull_until(chunks, done, pause: bool = False) -> list[SourceChunk]:
    """Chunks from the source until ``done(pulled)``; at most 2000 (a stuck source fails the test).
    ``pause``: let other tasks run between chunks, as the runtime does (a full queue, a sink)."""
    pulled: list[SourceChunk] = []
    for _ in range(2000):
        pulled.append(await chunks.__anext__())
        if pause:
            await asyncio.sleep(0)
        if done(pulled):
            return pulled
    raise AssertionError(f"the source did not get there; last chunks {[describe(c) for c in pulled[-5:]]}")


def describe(chunk: SourceChunk) -> tuple:
    if chunk.revoked:
        return ("revoked", chunk.revoked)
    if chunk.records:
        return ("records", chunk.partition, chunk.records[0]["offset"], chunk.records[-1]["offset"])
    return ("announce", chunk.partition, chunk.position)


def resumed_at(chunks: list[SourceChunk], partition: int) -> int:
    """Check the chunks of ``partition`` after its last revocation: one announcement at some position,
    then its records exactly from there to the end of its log (none skipped, none twice); returns the
    announced position."""
    last_revocation = max((i for i, c in enumerate(chunks) if partition in c.revoked), default=-1)
    mine = [c for c in chunks[last_revocation + 1:] if c.partition == partition and not c.revoked]
    trail = [describe(c) for c in mine]
    assert mine and not mine[0].records, f"partition {partition}: records before its announcement: {trail}"
    announced = mine[0].position
    offsets = [r["offset"] for c in mine if c.records for r in c.records]
    assert offsets and offsets[0] == announced, f"partition {partition} announced at {announced}: {trail}"
    assert offsets == list(range(announced, announced + len(offsets))), f"partition {partition}: {trail}"
    assert mine[-1].position == announced + len(offsets)
    return announced


def reached(partitions: dict[int, int]):
    def done(pulled: list[SourceChunk]) -> bool:
        last = {}
        for chunk in pulled:
            for p in chunk.revoked:
                last.pop(p, None)
            if chunk.records:
                last[chunk.partition] = chunk.records[-1]["offset"] + 1
        return all(last.get(p) == end for p, end in partitions.items())

    return done


@pytest.mark.parametrize("fetch_while_slow", [False, True])
async def test_a_partition_assigned_again_resumes_at_its_latest_checkpoint(fetch_while_slow):
    """Worker kept reading ahead of the group's committed offset (commits fail during rebalances); the
    partition comes back (an eager rebalance) while the callback is still reading the checkpoints."""
    consumer = ScriptedConsumer({0: 100})
    checkpoints: dict[int, int] = {}
    source = ScriptedSource(consumer, checkpoints)
    await source.open(10)
    chunks = source.read().__aiter__()
    try:
        await consumer.rebalance([0])
        first = await pull_until(chunks, lambda pulled: pulled[-1].position == 40)
        assert resumed_at(first, 0) == 0
        consumer.group_offsets[0] = 20  # the group's committed offset lags ...
        checkpoints[0] = 30  # ... behind the latest checkpoint holding the partition's state
        callback = consumer.rebalance([0], slow=3, fetch_while_slow=fetch_while_slow)
        after = await pull_until(chunks, reached({0: 100}))
        await callback
    finally:
        await chunks.aclose()
        await source.close()
    assert after[0].revoked == [0]
    assert resumed_at(after, 0) == 30, [describe(c) for c in after[:6]]
    assert source.resumed == [[0], [0]]


@pytest.mark.parametrize("fetch_while_slow", [False, True])
async def test_records_fetched_before_the_assignment_callback_finishes_are_not_lost(fetch_while_slow):
    """Several partitions assigned at once: aiokafka fetches all of them while the callback still settles
    where the first one starts (the group committed offset 0 for partition 1 and none for 0)."""
    consumer = ScriptedConsumer({0: 60, 1: 70})
    consumer.group_offsets[1] = 0
    source = ScriptedSource(consumer)
    await source.open(10)
    chunks = source.read().__aiter__()
    try:
        callback = consumer.rebalance([0, 1], slow=4, fetch_while_slow=fetch_while_slow)
        pulled = await pull_until(chunks, reached({0: 60, 1: 70}))
        await callback
    finally:
        await chunks.aclose()
        await source.close()
    assert resumed_at(pulled, 0) == 0
    assert resumed_at(pulled, 1) == 0


async def test_a_failing_assignment_callback_fails_the_read():
    """aiokafka only logs an exception of a rebalance callback; the source must not go on without it."""
    consumer = ScriptedConsumer({0: 10})
    source = ScriptedSource(consumer)

    async def broken(partitions):
        raise OSError("checkpoint directory unreachable")

    source.resume_positions = broken
    await source.open(10)
    chunks = source.read().__aiter__()
    try:
        await consumer.rebalance([0])
        with pytest.raises(ConnectorError, match="assignment failed: OSError: checkpoint directory unreachable"):
            for _ in range(10):
                await chunks.__anext__()
    finally:
        await chunks.aclose()
        await source.close()


@pytest.mark.parametrize("scale_out", [False, True])
async def test_an_assignment_published_while_a_poll_is_handed_out_skips_nothing(scale_out):
    """The callback (seeking to the checkpoint, 50) finishes while `read` hands out a poll fetched from the
    group's older offset (20): those records are dropped and read again from where the callback put the
    consumer, never processed against the checkpoint's state nor followed by a jump to 50."""
    consumer = ScriptedConsumer({0: 100})
    checkpoints: dict[int, int] = {}
    source = ScriptedSource(consumer, checkpoints)
    source.scale_out = scale_out
    await source.open(10)
    chunks = source.read().__aiter__()
    try:
        await consumer.rebalance([0])
        await pull_until(chunks, lambda pulled: pulled[-1].position == 50, pause=True)
        consumer.group_offsets[0] = 20
        checkpoints[0] = 50
        consumer.settle_mid_poll = True
        callback = consumer.rebalance([0], slow=1)
        after = await pull_until(chunks, reached({0: 100}), pause=True)
        await callback
    finally:
        await chunks.aclose()
        await source.close()
    assert after[0].revoked == [0]
    assert resumed_at(after, 0) == 50, [describe(c) for c in after]


async def test_records_fetched_before_a_slow_callback_reads_the_position_are_not_lost():
    """`getmany` returned records of a newly assigned partition (committed offset 0) that `read` has not
    handed out when the callback asks the consumer for its position: the partition starts at the first
    of them, not past them."""
    consumer = ScriptedConsumer({0: 100, 1: 30})
    source = ScriptedSource(consumer)
    source.scale_out = False
    await source.open(10)
    chunks = source.read().__aiter__()
    try:
        await consumer.rebalance([0])
        await pull_until(chunks, lambda pulled: pulled[-1].position == 30, pause=True)
        consumer.group_offsets.update({0: 20, 1: 0})
        consumer.settle_mid_poll = True
        callback = consumer.rebalance([0, 1], slow=1)
        after = await pull_until(chunks, reached({0: 100, 1: 30}), pause=True)
        await callback
    finally:
        await chunks.aclose()
        await source.close()
    assert resumed_at(after, 1) == 0, [describe(c) for c in after]
    assert resumed_at(after, 0) == 30  # this worker kept partition 0's state: it continues where it was
