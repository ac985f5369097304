"""The Kafka example job runs through `engine run` against the test broker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from tests import _broker
from tests.connectors.kafka_helpers import consume_all, produce

pytestmark = pytest.mark.kafka
ROOT = Path(__file__).resolve().parents[2]


async def test_kafka_example_job_reads_aggregates_and_writes_topics(bootstrap_servers):
    for topic in ("clicks", "clicks-per-minute", "clicks.dead-letter"):
        await _broker.create_topic(bootstrap_servers, topic, 2 if topic == "clicks" else 1)
    events = [(i % 2, 60_000 * (i // 10) + i, f"u{i % 3}".encode(), msgspec.json.encode({"user": f"u{i % 3}", "page": "/"}))
              for i in range(60)]
    await produce(bootstrap_servers, "clicks", events + [(0, 1, None, b"not json")])
    env = {**os.environ, "ENGINE_KAFKA_BOUNDED": "1"}
    env.pop("ENGINE_KAFKA_BOOTSTRAP_SERVERS", None)
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "engine.cli", "run", "examples/kafka_clicks_per_minute.py",
                         "--kafka-bootstrap-servers", bootstrap_servers],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "61 records in" in done.stdout.replace(",", "")
    results = [msgspec.json.decode(m.value) for m in await consume_all(bootstrap_servers, "clicks-per-minute")]
    expected: dict = {}
    for _, ts, key, _ in events:
        expected[(key.decode(), ts - ts % 60_000)] = expected.get((key.decode(), ts - ts % 60_000), 0) + 1
    assert {(r["key"], r["start"]): r["clicks"] for r in results} == expected
    letters = await consume_all(bootstrap_servers, "clicks.dead-letter", expected=1)
    assert [m.value for m in letters] == [b"not json"]
