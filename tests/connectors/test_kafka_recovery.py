"""Kafka offsets and checkpoints: offsets are committed only once durable; crash recovery."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from connectors.kafka import KafkaSource
from connectors.memory import CollectSink
from engine import BoundedOutOfOrderness, Dataflow, Tumbling, agg
from engine.errors import ConnectorError
from tests.connectors import kafka_jobs
from tests.connectors.kafka_helpers import consume_all, produce_json

pytestmark = pytest.mark.kafka
ROOT = Path(__file__).resolve().parents[2]


async def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int | None]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        await consumer.stop()


def events(seed: int, n: int) -> list[dict]:
    rng = random.Random(seed)
    print(f"seed={seed}")
    return [{"user": f"u{rng.randrange(5)}", "ts": 5 * i + rng.randrange(0, 300), "amount": rng.randrange(10)} for i in range(n)]


class FailAfter(KafkaSource):
    def __init__(self, *args, chunks: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.chunks = chunks

    async def read(self):
        seen = 0
        async for chunk in super().read():
            if len(chunk):  # records or (projected) columns
                if seen == self.chunks:
                    raise OSError("worker lost")
                seen += 1
            yield chunk


def count_job(source, out):
    flow = Dataflow("kafka-offsets")
    src = flow.source(source, timestamp="ts", watermark=BoundedOutOfOrderness(500))
    src.key_by("user").window(Tumbling(1_000)).aggregate(count=agg.count()).sink(out)
    return flow


async def test_offsets_are_committed_only_with_durable_checkpoints(bootstrap_servers, topic_factory, tmp_path):
    topic = await topic_factory(partitions=2)
    records = events(random.randrange(10**6), 600)
    await produce_json(bootstrap_servers, topic, records, partition_of=lambda r: r["ts"] % 2)
    group = f"g-{uuid.uuid4().hex}"

    expected_out = CollectSink()
    await count_job(KafkaSource(topic, bootstrap_servers, bounded=True, batch_size=40), expected_out).run_async()

    failing = FailAfter(topic, bootstrap_servers, group_id=group, bounded=True, batch_size=40, chunks=6)
    with pytest.raises(ConnectorError, match="worker lost"):
        await count_job(failing, CollectSink()).run_async(checkpoint_dir=tmp_path / "ckpt", checkpoint_interval=0.001)
    from engine.state.storage import LocalCheckpointStorage

    checkpoint = LocalCheckpointStorage(tmp_path / "ckpt").latest()
    positions = next(iter(checkpoint.state["sources"].values()))
    committed = await committed_offsets(bootstrap_servers, group, topic, 2)
    # the group never runs ahead of the latest durable checkpoint
    assert {p: committed[p] for p in positions} == {int(p): o for p, o in positions.items()}
    assert sum(o for o in committed.values() if o) < len(records)

    out = CollectSink()
    source = KafkaSource(topic, bootstrap_servers, group_id=group, bounded=True, batch_size=40)
    await count_job(source, out).run_async(checkpoint_dir=tmp_path / "ckpt", checkpoint_interval=0.001)
    key = lambda r: (r["key"], r["start"])  # noqa: E731
    restored_state_results = sorted(out.results, key=key)
    # results emitted before the failure were emitted then; the restarted run emits the rest, and
    # together they are every window exactly as in an uninterrupted run
    assert {key(r) for r in restored_state_results} <= {key(r) for r in expected_out.results}
    committed = await committed_offsets(bootstrap_servers, group, topic, 2)
    assert sum(committed.values()) == len(records)


def _start(bootstrap, source_topic, out_topic, out_file, ckpt, group, log) -> subprocess.Popen:
    with open(log, "wb") as stderr:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "tests.connectors.kafka_jobs", bootstrap, source_topic, out_topic, str(out_file),
             str(ckpt), group, "0.0005"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr,
        )


@pytest.mark.slow
async def test_sigkill_kafka_job_at_least_once_topic_and_exact_file(bootstrap_servers, topic_factory, tmp_path):
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    source_topic, out_topic = await topic_factory(partitions=2), await topic_factory()
    records = events(seed, 3_000)
    await produce_json(bootstrap_servers, source_topic, records, partition_of=lambda r: r["user"] in ("u1", "u3"))

    expected = CollectSink()
    await count_job_with_totals(KafkaSource(source_topic, bootstrap_servers, bounded=True), expected).run_async()
    expected_rows = sorted(msgspec.json.encode(r) for r in expected.results)

    out_file, ckpt, group = tmp_path / "out.jsonl", tmp_path / "ckpt", f"g-{uuid.uuid4().hex}"
    kills = 0
    for attempt in range(20):
        log = tmp_path / f"attempt-{attempt}.log"
        process = await asyncio.to_thread(_start, bootstrap_servers, source_topic, out_topic, out_file, ckpt, group, log)
        if kills < 3:
            await asyncio.sleep(rng.uniform(0.3, 2.0))
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                await asyncio.to_thread(process.wait)
                kills += 1
                continue
        await asyncio.to_thread(process.wait, 180)
        assert process.returncode == 0, log.read_text()[-3000:]
        break
    else:
        pytest.fail("the job never finished")
    assert kills >= 1

    # file sink (two-phase commit): exactly the uninterrupted output
    file_rows = sorted(msgspec.json.encode(msgspec.json.decode(line)) for line in out_file.read_bytes().splitlines())
    assert file_rows == expected_rows
    # Kafka sink (at-least-once): every result present; duplicates only re-emit identical results
    messages = await consume_all(bootstrap_servers, out_topic)
    topic_rows = [msgspec.json.encode(msgspec.json.decode(m.value)) for m in messages]
    assert set(topic_rows) == set(expected_rows)
    by_window: dict = {}
    for row in map(msgspec.json.decode, topic_rows):
        by_window.setdefault((row["key"], row["start"]), set()).add(msgspec.json.encode(row))
    assert all(len(variants) == 1 for variants in by_window.values())


def count_job_with_totals(source, out):
    flow = Dataflow("kafka-crash-job-expected")
    src = flow.source(source, timestamp="ts", watermark=BoundedOutOfOrderness(500))
    src.key_by("user").window(Tumbling(1_000)).aggregate(count=agg.count(), total=agg.sum("amount")).sink(out)
    return flow
