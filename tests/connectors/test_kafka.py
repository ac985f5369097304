"""Kafka connectors against the real test broker (Tansu, started by the session fixture)."""

from __future__ import annotations

import asyncio
import random
import time

import msgspec
import pytest
from aiokafka.partitioner import DefaultPartitioner

from connectors.kafka import KafkaDeadLetterSink, KafkaSink, KafkaSource, partition_id
from connectors.memory import CollectionSource, CollectSink
from engine import BoundedOutOfOrderness, Dataflow, Tumbling, agg
from tests.connectors.kafka_helpers import consume_all, produce, produce_json

pytestmark = pytest.mark.kafka

INT64_MIN = -(2**63)


def expected_tumbling_counts(records: list[dict], size: int, lag: int) -> list[tuple]:
    """Independent model of SEMANTICS.md for one partition: per-record watermark, late records dropped."""
    max_ts = None
    windows: dict[tuple, list] = {}
    for r in records:
        wm = INT64_MIN if max_ts is None else max_ts - lag - 1
        start = r["ts"] - r["ts"] % size
        if not wm >= start + size - 1:
            acc = windows.setdefault((r["user"], start), [0, 0])
            acc[0] += 1
            acc[1] += r["amount"]
        max_ts = r["ts"] if max_ts is None else max(max_ts, r["ts"])
    return sorted((k, s, s + size, c, t) for (k, s), (c, t) in windows.items())


def random_clicks(seed: int, n: int) -> list[dict]:
    rng = random.Random(seed)
    print(f"seed={seed}")
    return [
        {"user": f"u{rng.randrange(6)}", "ts": 10 * i + rng.randrange(-400, 400) + 1_000, "amount": rng.randrange(100)}
        for i in range(n)
    ]


async def test_topic_to_windows_to_topic(bootstrap_servers, topic_factory):
    source_topic, out_topic = await topic_factory(), await topic_factory()
    records = random_clicks(seed=random.randrange(10**6), n=400)
    await produce_json(bootstrap_servers, source_topic, records)

    flow = Dataflow("kafka-end-to-end")
    clicks = flow.source(
        KafkaSource(source_topic, bootstrap_servers, bounded=True, batch_size=37),
        timestamp="ts",
        watermark=BoundedOutOfOrderness(300),
    )
    (
        clicks.key_by("user")
        .window(Tumbling(500))
        .aggregate(count=agg.count(), total=agg.sum("amount"))
        .sink(KafkaSink(out_topic, bootstrap_servers, key="key"))
    )
    await asyncio.wait_for(flow.run_async(), timeout=60)  # bounded: returns at the high-water mark

    expected = expected_tumbling_counts(records, 500, 300)
    messages = await consume_all(bootstrap_servers, out_topic, expected=len(expected))
    got = sorted(
        (r["key"], r["start"], r["end"], r["count"], r["total"]) for r in (msgspec.json.decode(m.value) for m in messages)
    )
    assert got == expected
    assert all(m.key == msgspec.json.decode(m.value)["key"].encode() for m in messages)
    # A result's message timestamp is its event time, the window's end - 1 (as Flink and Kafka Streams write it)
    assert all(m.timestamp == msgspec.json.decode(m.value)["end"] - 1 for m in messages)


@pytest.mark.parametrize("timestamp", ["event", "produce"])
@pytest.mark.parametrize("key", [None, "key"])
async def test_results_go_out_as_whole_batches_with_their_timestamps(bootstrap_servers, topic_factory, timestamp, key,
                                                                    monkeypatch):
    # No headers: the sink frames whole record batches (connectors.kafka_framing), several per write with
    # a small max_batch_size; unkeyed ones spread over the output partitions, keyed ones on the partition
    # Kafka's default partitioner gives their key. Window results are framed straight from their columns.
    import connectors.kafka as kafka_module

    calls = {"framed_json_batches": 0, "framed_batches": 0}

    def spy(name):
        real = getattr(kafka_module, name)

        def counted(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        monkeypatch.setattr(kafka_module, name, counted)

    spy("framed_json_batches")
    spy("framed_batches")
    source_topic, out_topic = await topic_factory(), await topic_factory(partitions=3)
    records = random_clicks(seed=random.randrange(10**6), n=600)
    await produce_json(bootstrap_servers, source_topic, records)
    flow = Dataflow("kafka-framed")
    (
        flow.source(KafkaSource(source_topic, bootstrap_servers, bounded=True, batch_size=600), timestamp="ts",
                    watermark=BoundedOutOfOrderness(300))
        .key_by("user")
        .window(Tumbling(50))
        .aggregate(count=agg.count(), total=agg.sum("amount"))
        .sink(sink := KafkaSink(out_topic, bootstrap_servers, key=key, timestamp=timestamp,
                                producer_options={"max_batch_size": 1024}))
    )
    assert sink._framed
    before = time.time() * 1000
    await asyncio.wait_for(flow.run_async(), timeout=60)
    after = time.time() * 1000

    assert calls["framed_json_batches"] > 0 and calls["framed_batches"] == 0

    expected = expected_tumbling_counts(records, 50, 300)
    messages = await consume_all(bootstrap_servers, out_topic, expected=len(expected))
    values = [msgspec.json.decode(m.value) for m in messages]
    assert sorted((r["key"], r["start"], r["end"], r["count"], r["total"]) for r in values) == expected
    assert len({m.partition for m in messages}) == 3 and not any(m.headers for m in messages)
    if key is None:
        assert all(m.key is None for m in messages)
    else:
        partitioner = DefaultPartitioner()
        assert all(m.key == r["key"].encode() for m, r in zip(messages, values))
        assert all(m.partition == partitioner(m.key, [0, 1, 2], []) for m in messages)
    if timestamp == "event":
        assert all(m.timestamp == r["end"] - 1 for m, r in zip(messages, values))
    else:
        assert all(before - 1 <= m.timestamp <= after + 1 for m in messages)


@pytest.mark.parametrize("key", [None, "key"])
async def test_results_the_column_kernel_cannot_encode_go_out_encoded_per_record(bootstrap_servers, topic_factory,
                                                                                 key, monkeypatch):
    # Tuple keys: a columnar batch whose object column the fused kernel refuses (framed_json_batches
    # returns None); the sink encodes those records one by one instead (msgspec: a tuple is a list), with
    # nothing handed over twice or lost.
    import connectors.kafka as kafka_module

    fused_results = []
    real = kafka_module.framed_json_batches

    def spy(*args, **kwargs):
        fused_results.append(real(*args, **kwargs))
        return fused_results[-1]
    monkeypatch.setattr(kafka_module, "framed_json_batches", spy)
    out_topic = await topic_factory(partitions=2)
    records = [{"user": f"u{i % 5}", "page": i % 2, "ts": i * 10} for i in range(400)]
    flow = Dataflow("kafka-fallback")
    (
        flow.source(CollectionSource(records), timestamp="ts", watermark=BoundedOutOfOrderness(0))
        .key_by(lambda r: (r["user"], r["page"]))
        .window(Tumbling(100))
        .aggregate(count=agg.count())
        .sink(KafkaSink(out_topic, bootstrap_servers, key=key, producer_options={"max_batch_size": 1024}))
    )
    await asyncio.wait_for(flow.run_async(), timeout=60)
    assert fused_results and all(result is None for result in fused_results)
    expected = sorted((u, p, start, start + 100, n) for (u, p, start), n in _tuple_key_counts(records).items())
    messages = await consume_all(bootstrap_servers, out_topic, expected=len(expected))
    values = [msgspec.json.decode(m.value) for m in messages]
    assert sorted((*r["key"], r["start"], r["end"], r["count"]) for r in values) == expected
    assert all((m.key is None) == (key is None) for m in messages)


def _tuple_key_counts(records: list[dict]) -> dict:
    counts: dict = {}
    for r in records:
        window = (r["user"], r["page"], r["ts"] // 100 * 100)
        counts[window] = counts.get(window, 0) + 1
    return counts


async def test_event_time_defaults_to_the_kafka_record_timestamp(bootstrap_servers, topic_factory):
    topic = await topic_factory()
    # values carry no time at all; the message timestamps put them in windows [0,1000) and [1000,2000)
    await produce(bootstrap_servers, topic, [(0, ts, None, b'{"user":"a"}') for ts in (10, 20, 990, 1000, 1500)])
    flow = Dataflow("kafka-timestamps")
    src = flow.source(KafkaSource(topic, bootstrap_servers, bounded=True))
    src.key_by("user").window(Tumbling(1000)).aggregate(count=agg.count()).sink(out := CollectSink())
    await asyncio.wait_for(flow.run_async(), timeout=60)
    assert sorted((r["start"], r["count"]) for r in out.results) == [(0, 3), (1000, 2)]


async def test_bounded_source_stops_at_the_high_water_mark(bootstrap_servers, topic_factory):
    topic = await topic_factory(partitions=3)
    records = [{"user": "u", "ts": i, "amount": 1} for i in range(90)]
    await produce_json(bootstrap_servers, topic, records, partition_of=lambda r: r["ts"] % 3)
    flow = Dataflow("kafka-bounded")
    flow.source(KafkaSource(topic, bootstrap_servers, bounded=True, batch_size=10), timestamp="ts").sink(out := CollectSink())
    await asyncio.wait_for(flow.run_async(), timeout=60)
    assert sorted(r["ts"] for r in out.results) == list(range(90))


class PauseRecordingSource(KafkaSource):
    """Notes, at each pause of its consumer, the paused partition and every partition's position."""

    def _new_consumer(self, consumer_class, options):
        consumer = super()._new_consumer(consumer_class, options)
        self.pauses = []
        pause = consumer.pause

        def recording_pause(*tps):
            self.pauses.extend((tp.partition, dict(self._positions)) for tp in tps)
            pause(*tps)

        consumer.pause = recording_pause
        return consumer


async def test_bounded_source_stops_fetching_partitions_read_to_their_bound(bootstrap_servers, topic_factory):
    # A fetch of partitions with nothing new is held by the broker for fetch_max_wait_ms, and the fetch of
    # those still being read waits behind it: each partition is paused once it has been fetched to its
    # bound (the empty one at once), and everything is read.
    topic = await topic_factory(partitions=3)
    long = [{"user": "u", "ts": i, "amount": 1} for i in range(3_000)]
    short = [{"user": "v", "ts": i, "amount": 1} for i in range(5)]
    await produce_json(bootstrap_servers, topic, long, partition_of=lambda r: 2)
    await produce_json(bootstrap_servers, topic, short, partition_of=lambda r: 0)  # partition 1 stays empty
    source = PauseRecordingSource(topic, bootstrap_servers, bounded=True, batch_size=100)
    flow = Dataflow("kafka-bounded-pauses")
    flow.source(source, timestamp="ts").sink(out := CollectSink())
    await asyncio.wait_for(flow.run_async(), timeout=60)
    assert len(out.results) == 3_005
    assert sorted(partition for partition, _ in source.pauses) == [0, 1, 2]
    assert source._positions == {partition_id(0, 0): 5, partition_id(0, 1): 0, partition_id(0, 2): 3_000}


class PauseConsumer:
    """What `KafkaSource._pause_finished` uses of a consumer."""

    def __init__(self, assigned, paused, highwater):
        self.assigned, self.paused_set, self.highwaters = set(assigned), set(paused), highwater
        self.calls = []

    def assignment(self):
        return set(self.assigned)

    def paused(self):
        return set(self.paused_set)

    def highwater(self, tp):
        return self.highwaters[tp.partition]

    def pause(self, *tps):
        self.calls += [("pause", tp.partition) for tp in tps]
        self.paused_set.update(tps)

    def resume(self, *tps):
        self.calls += [("resume", tp.partition) for tp in tps]
        self.paused_set.difference_update(tps)


def test_a_partition_paused_at_its_bound_is_resumed_when_its_records_were_not_handed_out():
    # Paused as soon as its last records were fetched; a rebalance then dropped them: it must be fetched
    # again. A partition read to its bound is paused; the job is done only when all are.
    from aiokafka import TopicPartition

    tps = [TopicPartition("t", p) for p in range(3)]
    source = KafkaSource("t", "localhost:9092", bounded=True)
    source._consumer = consumer = PauseConsumer(tps, paused=[tps[0]], highwater={0: 10, 1: 7, 2: 4})
    source._assigned = {partition_id(0, p) for p in range(3)}
    source._positions = {partition_id(0, 0): 6, partition_id(0, 1): 7, partition_id(0, 2): 1}
    assert not source._pause_finished()
    assert sorted(consumer.calls) == [("pause", 1), ("resume", 0)]
    source._positions.update({partition_id(0, 0): 10, partition_id(0, 2): 4})
    assert source._pause_finished()
    assert sorted(consumer.paused_set, key=lambda tp: tp.partition) == tps


async def _wait_until(predicate, timeout: float = 60.0) -> bool:
    """Poll ``predicate`` until it holds; the deadline covers a consumer start and fetch on a loaded machine."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


def _window_job(topic: str, bootstrap: str, idle_timeout: int | None) -> tuple[Dataflow, CollectSink]:
    flow = Dataflow("kafka-watermarks")
    src = flow.source(
        KafkaSource(topic, bootstrap_servers=bootstrap, poll_timeout_ms=50),
        timestamp="ts",
        watermark=BoundedOutOfOrderness(0, idle_timeout=idle_timeout),
    )
    src.key_by("user").window(Tumbling(1000)).aggregate(count=agg.count()).sink(out := CollectSink())
    return flow, out


async def test_a_lagging_partition_holds_the_watermark_back(bootstrap_servers, topic_factory):
    topic = await topic_factory(partitions=2)
    ahead = [{"user": "u", "ts": t, "amount": 1} for t in range(0, 10_000, 100)]
    await produce_json(bootstrap_servers, topic, ahead, partition_of=lambda r: 0)
    await produce_json(bootstrap_servers, topic, [{"user": "u", "ts": 50, "amount": 1}], partition_of=lambda r: 1)
    flow, out = _window_job(topic, bootstrap_servers, idle_timeout=None)
    run = asyncio.create_task(flow.run_async())
    try:
        # partition 1 is at ts 50: the watermark is 49, no window [0, 1000) may fire
        await asyncio.sleep(2.0)
        assert out.results == []
        assert not run.done()
        # partition 1 catches up to 5,000: windows ending at or before 5,000 fire, later ones do not
        await produce_json(bootstrap_servers, topic, [{"user": "u", "ts": 5_000, "amount": 1}], partition_of=lambda r: 1)
        assert await _wait_until(lambda: any(r["start"] == 4_000 for r in out.results))
        await asyncio.sleep(0.5)
        assert max(r["start"] for r in out.results) == 4_000
        assert {r["start"]: r["count"] for r in out.results}[0] == 11  # 10 from partition 0, 1 from partition 1
    finally:
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run


async def test_an_idle_partition_stops_holding_the_watermark_back(bootstrap_servers, topic_factory):
    topic = await topic_factory(partitions=2)
    records = [{"user": "u", "ts": t, "amount": 1} for t in range(0, 5_000, 100)]
    await produce_json(bootstrap_servers, topic, records, partition_of=lambda r: 0)
    flow, out = _window_job(topic, bootstrap_servers, idle_timeout=300)
    run = asyncio.create_task(flow.run_async())
    try:
        # partition 1 never produces; after 300 ms it is idle and partition 0 alone drives the watermark
        assert await _wait_until(lambda: len(out.results) >= 4)
        assert sorted(r["start"] for r in out.results) == [0, 1_000, 2_000, 3_000]
    finally:
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run


async def test_undecodable_messages_go_to_the_dead_letter_topic(bootstrap_servers, topic_factory):
    topic, dlq = await topic_factory(), await topic_factory(prefix="dlq")
    good = b'{"user":"a","ts":5,"amount":1}'
    await produce(bootstrap_servers, topic, [
        (0, 1, None, good), (0, 2, b"k2", b"{not json", [("trace", b"t-2")]), (0, 3, None, good), (0, 4, None, b"\xff"),
    ])
    flow = Dataflow("kafka-dead-letters")
    src = flow.source(KafkaSource(topic, bootstrap_servers, bounded=True), timestamp="ts")
    src.sink(out := CollectSink())
    src.dead_letters().sink(KafkaDeadLetterSink(dlq, bootstrap_servers))
    await asyncio.wait_for(flow.run_async(), timeout=60)

    assert len(out.results) == 2
    letters = await consume_all(bootstrap_servers, dlq, expected=2)
    assert [m.value for m in letters] == [b"{not json", b"\xff"]
    # the original key and headers are kept, the error headers come after them (as Kafka Connect's DLQ)
    assert [m.key for m in letters] == [b"k2", None]
    assert letters[0].headers[0] == ("trace", b"t-2") and len(letters[1].headers) == 5
    for message, offset in zip(letters, (1, 3)):
        headers = dict(message.headers)
        assert headers["topic"] == topic.encode()
        assert headers["partition"] == b"0"
        assert headers["offset"] == str(offset).encode()
        assert b"cannot decode" in headers["error"]


async def test_metadata_records_carry_each_message_whole(bootstrap_servers, topic_factory):
    """``metadata=True``: records are `KafkaMessage`s (decoded key and value, offset, timestamp, headers),
    in offset order across several slices of a poll; an undecodable value still goes to the dead letters."""
    from connectors.kafka import KafkaMessage

    topic = await topic_factory()
    messages = [(0, 1_000 + i, f"k{i}".encode() if i % 3 else None, msgspec.json.encode({"i": i}),
                 [("n", str(i).encode())] if i % 2 else []) for i in range(1_200)]
    messages[700] = (0, 1_700, b"k700", b"{broken", [("n", b"700")])
    await produce(bootstrap_servers, topic, messages)
    flow = Dataflow("kafka-metadata")
    src = flow.source(KafkaSource(topic, bootstrap_servers, bounded=True, metadata=True, key="str"))
    src.sink(out := CollectSink())
    src.dead_letters().sink(dead := CollectSink())
    await asyncio.wait_for(flow.run_async(), timeout=60)

    expected = [KafkaMessage(topic, 0, i, ts, None if key is None else key.decode(), msgspec.json.decode(value), tuple(headers))
                for i, (_, ts, key, value, headers) in enumerate(messages) if i != 700]
    assert out.results == expected
    [letter] = dead.results
    assert letter.record == KafkaMessage(topic, 0, 700, 1_700, b"k700", b"{broken", (("n", b"700"),))
    assert "cannot decode the value of" in letter.error and f"{topic}[0]@700" in letter.error


def test_partition_ids_are_stable_per_topic_and_partition():
    assert partition_id(0, 3) == 3
    assert partition_id(2, 3) != partition_id(3, 2)
    assert KafkaSource(["a", "b"], "x:1").pid("b", 5) == partition_id(1, 5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"topics": []}, "one or more topic names"),
        ({"start": "middle"}, "start= must be"),
        ({"start": "committed"}, "needs a group_id"),
        ({"value": 42}, "value= must be"),
        ({"batch_size": 0}, "batch_size must be a positive int"),
    ],
)
def test_bad_source_options_fail_at_build_time(kwargs, message):
    from engine.errors import FlowDefinitionError

    options = {"topics": "t", "bootstrap_servers": "127.0.0.1:1", **kwargs}
    with pytest.raises(FlowDefinitionError, match=message):
        KafkaSource(options.pop("topics"), options.pop("bootstrap_servers"), **options)


def test_bootstrap_servers_come_from_the_environment_or_fail_clearly(monkeypatch):
    from engine.errors import FlowDefinitionError

    monkeypatch.delenv("ENGINE_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    with pytest.raises(FlowDefinitionError, match="needs bootstrap_servers="):
        KafkaSource("t")
    monkeypatch.setenv("ENGINE_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    assert KafkaSource("t").bootstrap_servers == "127.0.0.1:9"
    assert KafkaSink("t").bootstrap_servers == "127.0.0.1:9"


async def test_a_batch_with_some_null_keys_is_written_message_by_message(bootstrap_servers, topic_factory):
    out_topic = await topic_factory(partitions=2)
    records = [{"user": None if i % 3 == 0 else f"u{i % 5}", "n": i} for i in range(60)]
    flow = Dataflow("kafka-null-keys")
    flow.source(CollectionSource(records), timestamp=lambda r: 1_000 + r["n"]).sink(
        KafkaSink(out_topic, bootstrap_servers, key="user"))
    await asyncio.wait_for(flow.run_async(), timeout=60)
    messages = await consume_all(bootstrap_servers, out_topic, expected=len(records))
    got = sorted((msgspec.json.decode(m.value)["n"], m.key, m.timestamp) for m in messages)
    assert got == [(r["n"], None if r["user"] is None else r["user"].encode(), 1_000 + r["n"]) for r in records]
    partitioner = DefaultPartitioner()
    assert all(m.partition == partitioner(m.key, [0, 1], []) for m in messages if m.key is not None)
