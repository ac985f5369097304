"""Restart: stop and restart the quality and serving services mid-stream, gracefully and by a crash
between write and commit; no record is lost and none is stored (or counted) twice."""

import asyncio
import uuid

import pytest

from engine.services.config import parse_config
from engine.services.platform import Platform

from tests.services.test_end_to_end import expected_bad, make_records
from tests.waiting import wait_until

N = 300


def config(tmp_path, bus):
    return parse_config({
        "bus": bus, "data_dir": "state", "http": {"port": 0},
        "services": [
            {"kind": "ingestion", "name": "ingest", "output": "raw", "id_field": "id", "time_field": "ts",
             "batch_size": 10, "linger_ms": 5},
            {"kind": "transformation", "name": "enrich", "input": "raw", "output": "enriched",
             "steps": [{"transform": "tests.services.test_end_to_end:normalise"}], "max_batch": 20},
            {"kind": "quality", "name": "quality", "input": "enriched", "output": "validated", "window_ms": 20_000,
             "max_batch": 20, "rules": [{"rule": "not_null", "field": "user"},
                                        {"rule": "between", "field": "amount", "min": 0},
                                        {"rule": "in_set", "field": "country", "values": ["DE", "FR"]}]},
            {"kind": "serving", "name": "serving", "input": "validated", "indexes": {"user": "text"},
             "max_batch": 20},
        ]}, base_dir=tmp_path)


async def crash_after_write(service, timeout=60.0):
    """Restart ``service`` so that its next batch is fully processed (stored, published) but the bus
    commit never happens: the process 'dies' between the two. Returns once it has crashed."""
    original = service.handle_batch
    wrote = asyncio.Event()

    async def write_then_hang(batch):
        await original(batch)
        wrote.set()
        await asyncio.Event().wait()  # never commits

    service.handle_batch = write_then_hang
    await service.start()
    await asyncio.wait_for(wrote.wait(), timeout)
    await service.stop(timeout=0.05)  # the drain times out: the batch is cancelled before its commit
    del service.handle_batch


async def run_restart_scenario(tmp_path, bus_config):
    records = make_records(N)
    bad = expected_bad(records)
    good_ids = {r["id"] for r in records} - bad
    released = asyncio.Event()

    async def slow_source():
        for i, record in enumerate(records):
            if i == N // 3:
                await released.wait()  # hold the rest back until the restarts have begun
            yield record
            if i % 10 == 9:
                await asyncio.sleep(0.002)

    platform = Platform(config(tmp_path, bus_config))
    platform.service("ingest").source = slow_source
    await platform.start()
    try:
        serving, quality = platform.service("serving"), platform.service("quality")
        await wait_until(lambda: serving.store.is_open and serving.store.count() >= 20)
        # 1. graceful restart of both while ingestion keeps producing
        await asyncio.gather(quality.stop(), serving.stop())
        released.set()
        await asyncio.sleep(0.05)
        # 2. each crashes after writing a batch but before committing it (redelivered on restart);
        # concurrently, because a Kafka consumer-group join takes seconds
        await asyncio.gather(crash_after_write(quality), crash_after_write(serving))
        await asyncio.gather(quality.start(), serving.start())
        await wait_until(lambda: serving.store.count() == len(good_ids) and quality.quarantine_count() == len(bad)
                         and platform.service("ingest").source_done)
        await asyncio.sleep(0.2)  # anything extra would arrive now
        assert set(serving.store.ids()) == good_ids  # nothing lost
        assert serving.store.count() == len(good_ids)  # nothing stored twice
        windows = quality.windows()
        assert sum(w["total"] for w in windows) == N  # nothing counted twice in the trend
        assert sum(w["total"] - w["passed"] for w in windows) == len(bad)
        stored = serving.store.get(sorted(good_ids)[0])
        source = next(r for r in records if r["id"] == stored["id"])
        assert stored["payload"]["user"] == source["user"].strip().lower()
        # the crash made the bus redeliver: the restarted services saw, and absorbed, duplicates
        assert serving.duplicates.value + serving.subscription.duplicates > 0
        return platform
    finally:
        await platform.stop()


async def test_restart_quality_and_serving_mid_stream_in_process(tmp_path):
    await run_restart_scenario(tmp_path, {"type": "memory"})


@pytest.mark.kafka
@pytest.mark.slow  # ~30 s: each restart is a Kafka consumer-group join, which the test broker makes slow
async def test_restart_quality_and_serving_mid_stream_on_kafka(tmp_path, bootstrap_servers):
    await run_restart_scenario(tmp_path, {"type": "kafka", "bootstrap_servers": bootstrap_servers,
                                          "topic_prefix": f"rs-{uuid.uuid4().hex[:8]}.", "partitions": 2,
                                          "consumer_options": {"session_timeout_ms": 6000,
                                                               "heartbeat_interval_ms": 300,
                                                               "max_poll_interval_ms": 2000}})
