"""End to end: ingestion -> transformation -> quality -> serving from one platform config, on the
in-process bus and on Kafka; bad records quarantined, good ones queryable over HTTP."""

import asyncio
import json
import uuid

import aiohttp
import pytest

from engine.services.config import parse_config
from engine.services.platform import Platform

TOKEN = "e2e-token"


def normalise(payload):
    """The registered transform of the test pipeline: trims and lower-cases the user name."""
    user = payload.get("user")
    return {**payload, "user": user.strip().lower() if isinstance(user, str) else user}


def make_records(n=60):
    records = []
    for i in range(n):
        r = {"id": f"o{i}", "ts": 1_700_000_000_000 + i * 1000, "user": f" U{i % 4} ", "amount": i % 7,
             "country": "DE" if i % 2 else "FR"}
        if i % 10 == 3:
            r["user"] = None  # not_null
        if i % 10 == 7:
            r["amount"] = -5  # between
        if i % 15 == 11:
            r["country"] = "ZZ"  # unknown: lookup keeps it, in_set rejects it
        records.append(r)
    return records


def expected_bad(records):
    return {r["id"] for r in records if r["user"] is None or r["amount"] < 0 or r["country"] == "ZZ"}


def platform_config(tmp_path, records, bus):
    source = tmp_path / "orders.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    return parse_config({
        "name": "e2e platform",
        "data_dir": "state",
        "bus": bus,
        "http": {"port": 0, "token": TOKEN, "max_body_bytes": 65536},
        "services": [
            {"kind": "ingestion", "name": "ingest", "output": "raw", "id_field": "id", "time_field": "ts",
             "key_field": "country", "source": {"type": "jsonl", "path": "orders.jsonl"}, "batch_size": 16, "linger_ms": 20},
            {"kind": "transformation", "name": "enrich", "input": "raw", "output": "enriched",
             "steps": [{"transform": "tests.services.test_end_to_end:normalise"},
                       {"lookup": {"field": "country", "table": {"DE": {"region": "central"},
                                                                 "FR": {"region": "west"}}}}]},
            {"kind": "quality", "name": "quality", "input": "enriched", "output": "validated",
             "quarantine": "quarantine", "alerts": "alerts", "alert_threshold": 0.5, "window_ms": 10_000,
             "rules": [{"rule": "not_null", "field": "user"},
                       {"rule": "between", "field": "amount", "min": 0},
                       {"rule": "in_set", "field": "country", "values": ["DE", "FR"]}]},
            {"kind": "serving", "name": "serving", "input": "validated", "indexes": {"user": "text", "region": "text"},
             "default_limit": 10, "max_limit": 100},
        ],
    }, base_dir=tmp_path)


async def wait_for(predicate, timeout=60.0, interval=0.05):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval)


async def check_pipeline(platform, records):
    bad = expected_bad(records)
    good = [r for r in records if r["id"] not in bad]
    assert 0 < len(bad) < len(records)
    async with aiohttp.ClientSession(base_url=platform.url) as http:
        async def done():
            async with http.get("/api/status") as resp:
                status = {s["name"]: s for s in (await resp.json())["services"]}
            return status["serving"]["records_stored"] == len(good) and status["quality"]["quarantined_total"] == len(bad)

        await wait_for(done)
        # good records: by id, enriched and normalised
        async with http.get(f"/records/{good[0]['id']}") as resp:
            assert resp.status == 200
            record = await resp.json()
        assert record["payload"]["user"] == good[0]["user"].strip().lower()
        assert record["payload"]["region"] in ("central", "west")
        # bad records are not served...
        for rid in sorted(bad)[:3]:
            async with http.get(f"/records/{rid}") as resp:
                assert resp.status == 404
        # ...but quarantined with their violations (admin endpoint)
        items, cursor = [], None
        while True:
            params = {"limit": "7", **({"cursor": cursor} if cursor else {})}
            async with http.get("/quality/quarantine", params=params,
                                headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                page = await resp.json()
            items.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert {i["id"] for i in items} == bad
        by_id = {i["id"]: i for i in items}
        rules = {v["rule"] for v in by_id["o3"]["violations"]}
        assert rules == {"not_null(user)"}
        # filtered queries over the indexed field, paged
        ids, cursor = [], None
        while True:
            params = {"user": "u1", "limit": "4", **({"cursor": cursor} if cursor else {})}
            async with http.get("/records", params=params) as resp:
                page = await resp.json()
            assert len(page["items"]) <= 4
            ids.extend(r["id"] for r in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(ids) == sorted(r["id"] for r in good if r["user"].strip().lower() == "u1")
        async with http.get("/quality/trend") as resp:
            trend = await resp.json()
        assert sum(w["total"] for w in trend["windows"]) == len(records)
        async with http.get("/metrics") as resp:
            text = await resp.text()
        assert f'engine_quality_records_quarantined_total{{service="quality"}} {len(bad)}' in text
        async with http.get("/health") as resp:
            assert resp.status == 200
    return good, bad


async def test_end_to_end_in_process_bus(tmp_path):
    records = make_records()
    config = platform_config(tmp_path, records, {"type": "memory"})
    async with Platform(config) as platform:
        good, bad = await check_pipeline(platform, records)
        assert platform.service("serving").store.count() == len(good)
    assert (tmp_path / "state" / "serving.db").exists() and (tmp_path / "state" / "quality.db").exists()


@pytest.mark.kafka
async def test_end_to_end_on_kafka(tmp_path, bootstrap_servers):
    records = make_records()
    config = platform_config(tmp_path, records, {"type": "kafka", "bootstrap_servers": bootstrap_servers,
                                                 "topic_prefix": f"e2e-{uuid.uuid4().hex[:8]}.",
                                                 "partitions": 2})
    async with Platform(config) as platform:
        good, bad = await check_pipeline(platform, records)


async def test_stopping_the_in_process_platform_drains_every_stage(tmp_path):
    records = make_records(200)
    config = platform_config(tmp_path, records, {"type": "memory"})
    platform = Platform(config)
    await platform.start()
    ingest = platform.service("ingest")
    while not ingest.source_done:
        await asyncio.sleep(0.001)
    await platform.stop()  # immediately: downstream stages still hold a backlog
    bad = expected_bad(records)
    async with Platform(config, only=["quality", "serving"]) as again:  # the SQLite stores hold everything
        assert again.service("serving").store.count() == len(records) - len(bad)
        assert again.service("quality").quarantine_count() == len(bad)
        assert [s["lag"] for s in again.registry.snapshot()] == [0, 0]
