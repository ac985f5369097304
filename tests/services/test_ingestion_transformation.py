"""Ingestion (standardise, batch, linger, drain, dead letters, HTTP push) and transformation (transforms,
lookups, failures to dead letters)."""

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from engine.errors import ServiceError
from engine.services.bus import InMemoryBus
from engine.services.http import make_service_app
from engine.services.ingestion import IngestionService, jsonl_source
from engine.services.transformation import (Lookup, LookupStep, MapStep, TransformationService,
                                            register_transform, resolve_transform)

from tests.waiting import wait_until


async def test_ingestion_batches_standardises_and_dead_letters():
    bus = InMemoryBus()
    records = [{"id": i, "ts": 1000 + i, "v": i} for i in range(7)]
    records.insert(3, {"ts": 5})  # no id
    records.insert(5, ["not", "a", "mapping"])
    records.insert(6, {"id": 99, "ts": "yesterday"})
    svc = IngestionService("ingest", bus, "raw", source=records, id_field="id", time_field="ts",
                           schema_id="orders/1", batch_size=3, linger_ms=10_000)
    await svc.start()
    await wait_until(lambda: svc.source_done)
    out = bus.read_all("raw")
    assert [e.id for e in out] == [str(i) for i in range(7)]
    assert out[2].time == 1002 and out[2].schema_id == "orders/1" and out[2].source == "ingest"
    dead = bus.read_all("raw.dead-letter")
    assert [d.headers["error"] for d in dead] == [
        "ingestion 'ingest': id field 'id' is missing or not a scalar (value None)",
        "ingestion 'ingest': a record must be a JSON object/mapping, got list: \"['not', 'a', 'mapping']\"",
        "ingestion 'ingest': time field 'ts' must be an int (ms since the epoch), got 'yesterday'",
    ]
    assert dead[1].payload == {"record": ["not", "a", "mapping"]}
    assert svc.batches_published.value >= 3
    await svc.stop()


async def test_ingestion_linger_publishes_a_partial_batch_and_stop_drains():
    bus = InMemoryBus()
    feed: asyncio.Queue = asyncio.Queue()

    async def endless():
        while True:
            yield await feed.get()

    svc = IngestionService("ingest", bus, "raw", source=endless, batch_size=100, linger_ms=20)
    await svc.start()
    for i in range(3):
        feed.put_nowait({"n": i})
    await wait_until(lambda: bus.channel_size("raw") == 3)  # linger flushed a partial batch
    for i in range(3, 5):
        feed.put_nowait({"n": i})
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    svc.linger = 60.0
    await svc.stop()
    assert sorted(e.payload["n"] for e in bus.read_all("raw")) == [0, 1, 2, 3, 4]
    assert not svc.source_done and svc.state == "stopped"


async def test_jsonl_source_dead_letters_bad_lines(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"a": 1}\n{broken\n\n{"a": 2}\n')
    bus = InMemoryBus()
    svc = IngestionService("files", bus, "raw", source=lambda: jsonl_source(path), linger_ms=0)
    await svc.start()
    await wait_until(lambda: svc.source_done)
    assert [e.payload for e in bus.read_all("raw")] == [{"a": 1}, {"a": 2}]
    [dead] = bus.read_all("raw.dead-letter")
    assert "in.jsonl:2: not valid JSON" in dead.headers["error"]
    await svc.stop()


async def test_http_ingest_validates_bodies_and_sizes():
    bus = InMemoryBus()
    svc = IngestionService("ingest", bus, "raw", id_field="id")
    await svc.start()
    async with TestClient(TestServer(make_service_app(svc, token="t", max_body_bytes=2048))) as client:
        auth = {"Authorization": "Bearer t"}
        assert (await client.post("/ingest", json=[{"id": 1}])).status == 401
        resp = await client.post("/ingest", json=[{"id": 1}, {"id": 2}, {"x": 3}], headers=auth)
        assert resp.status == 207
        body = await resp.json()
        assert body["accepted"] == 2 and body["rejected"][0]["index"] == 2
        resp = await client.post("/ingest", data=b'{"id": 7}\n{"id": 8}\n', headers={
            **auth, "Content-Type": "application/x-ndjson"})
        assert (await resp.json()) == {"accepted": 2, "rejected": []}
        resp = await client.post("/ingest", data=b"{not json", headers=auth)
        assert resp.status == 400 and "not valid JSON" in (await resp.json())["error"]
        resp = await client.post("/ingest", data=b"", headers=auth)
        assert resp.status == 400 and "empty request body" in (await resp.json())["error"]
        resp = await client.post("/ingest", data=json.dumps([{"id": i} for i in range(500)]), headers=auth)
        assert resp.status == 413 and "2048" in (await resp.json())["error"]
    assert [e.id for e in bus.read_all("raw")] == ["1", "2", "7", "8"]
    await svc.stop()


def double(payload):
    return {**payload, "v": payload["v"] * 2}


async def test_transformation_steps_lookups_and_failures():
    register_transform("double", double)

    def explode(p):
        return [{"part": i, **p} for i in range(p.get("parts", 1))]

    def only_positive(p):
        if p["v"] == 3:
            raise ValueError("three is cursed")
        return p if p["v"] > 0 else None

    steps = [MapStep(*resolve_transform("double")), MapStep("only_positive", only_positive),
             LookupStep(Lookup(field="country", table={"DE": {"name": "Germany"}}, into="country_info",
                               on_missing="dead_letter")),
             MapStep("explode", explode)]
    bus = InMemoryBus()
    svc = TransformationService("transform", bus, "raw", "enriched", steps=steps)
    await svc.start()
    from engine.services.envelope import Envelope
    await bus.publish("raw", [Envelope(id=f"t{i}", source="s", time=i, payload={"v": v, "country": c, "parts": n})
                              for i, (v, c, n) in enumerate([(1, "DE", 1), (0, "DE", 1), (3, "DE", 1),
                                                             (2, "XX", 1), (4, "DE", 2)])])
    await wait_until(lambda: svc.records_in.value == 5)
    out = bus.read_all("enriched")
    assert [(e.id, e.payload["v"], e.payload.get("part")) for e in out] == [
        ("t0:0", 2, 0), ("t2:0", 6, 0), ("t4:0", 8, 0), ("t4:1", 8, 1)]
    assert out[0].payload["country_info"] == {"name": "Germany"}
    dead = {e.id: e.headers["error"] for e in bus.read_all("raw.dead-letter")}
    assert dead == {"t3": "lookup(country): no entry for country='XX'"}  # t2 is 6 after double: not cursed
    assert svc.dropped.value == 1
    await svc.stop()
    with pytest.raises(ServiceError, match="unknown transform 'nope'"):
        resolve_transform("nope")
    assert resolve_transform("tests.services.test_ingestion_transformation:double")[1] is double


async def test_transform_errors_go_to_dead_letter_with_the_reason():
    def boom(p):
        raise KeyError("price")

    bus = InMemoryBus()
    svc = TransformationService("transform", bus, "raw", "out", steps=[MapStep("boom", boom)])
    await svc.start()
    from engine.services.envelope import Envelope
    await bus.publish("raw", [Envelope(id="x", source="s", time=0, payload={})])
    await wait_until(lambda: svc.failed_records.value == 1)
    [dead] = bus.read_all("raw.dead-letter")
    assert dead.headers["error"] == "transform 'boom' raised KeyError: 'price'"
    assert dead.headers["error.service"] == "transform"
    await svc.stop()


def test_key_field_sets_the_partition_key_header():
    from engine.services.ingestion import StandardiseError

    svc = IngestionService("ingest", InMemoryBus(), "raw", key_field="user")
    assert svc.standardise({"user": 42}).headers == {"partition_key": "42"}
    with pytest.raises(StandardiseError, match="key field 'user' is missing or not a scalar"):
        svc.standardise({"other": 1})
