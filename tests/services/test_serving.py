"""Serving: idempotent SQLite store, indexed filters, cursor pages, TTL cache invalidation, HTTP errors."""

import pytest
from aiohttp.test_utils import TestClient, TestServer

from engine.errors import ServiceError
from engine.services.bus import InMemoryBus
from engine.services.cache import MISS, TTLCache
from engine.services.envelope import Envelope
from engine.services.http import make_service_app
from engine.services.serving import ServingService
from engine.services.store import QueryError, RecordStore

from tests.waiting import wait_until


def env(i, **payload):
    return Envelope(id=f"r{i}", source="test", time=1000 + i, payload={"n": i, **payload})


def test_store_is_idempotent_and_pages_with_cursor(tmp_path):
    store = RecordStore(tmp_path / "s.db", indexes={"user": "text", "n": "integer"}).open()
    records = [env(i, user=f"u{i % 3}") for i in range(20)]
    assert store.put_many(records) == 20
    assert store.put_many(records[:5] + [env(20, user="u0")]) == 1  # redelivery stores nothing twice
    assert store.count() == 21
    pages, cursor = [], None
    while True:
        items, cursor = store.query({"user": "u0"}, limit=3, cursor=cursor)
        pages.append([r["id"] for r in items])
        if cursor is None:
            break
    assert [i for p in pages for i in p] == ["r0", "r3", "r6", "r9", "r12", "r15", "r18", "r20"]
    assert all(len(p) <= 3 for p in pages)
    assert store.query({"n": 7}, limit=10)[0][0]["payload"] == {"n": 7, "user": "u1"}
    with pytest.raises(QueryError, match="not an indexed field"):
        store.query({"nope": 1}, limit=1)
    with pytest.raises(QueryError, match="invalid cursor"):
        store.query({}, limit=1, cursor="garbage!")
    store.close()
    # Reopen with an extra index: the column is added and back-filled from the payloads.
    store = RecordStore(tmp_path / "s.db", indexes={"user": "text", "n": "integer", "extra": "text"}).open()
    assert store.count() == 21 and store.query({"n": 3}, limit=5)[0][0]["id"] == "r3"
    store.close()


def test_latest_conflict_policy_never_rolls_back():
    store = RecordStore(indexes=["user"], on_conflict="latest").open()
    store.put_many([Envelope(id="a", source="s", time=10, payload={"user": "old"})])
    store.put_many([Envelope(id="a", source="s", time=20, payload={"user": "new"})])
    store.put_many([Envelope(id="a", source="s", time=15, payload={"user": "stale"})])  # redelivered, older
    assert store.get("a")["payload"] == {"user": "new"}
    assert [r["id"] for r in store.query({"user": "new"}, limit=5)[0]] == ["a"]


def test_store_refuses_bad_configuration():
    with pytest.raises(ServiceError, match="invalid index field"):
        RecordStore(indexes=["drop table"])
    with pytest.raises(ServiceError, match="type must be one of"):
        RecordStore(indexes={"a": "blob"})


def test_ttl_cache_expires_and_evicts():
    now = [0.0]
    cache = TTLCache(max_entries=2, ttl_ms=1000, clock=lambda: now[0])
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)  # evicts the least recently used ("b")
    assert cache.get("b") is MISS and cache.get("c") == 3
    now[0] = 1.5
    assert cache.get("a") is MISS


@pytest.fixture
async def serving():
    bus = InMemoryBus()
    service = ServingService("serving", bus, "validated", indexes={"user": "text", "n": "integer"},
                             cache_ttl_ms=60_000, default_limit=5, max_limit=50)
    await service.start()
    client = TestClient(TestServer(make_service_app(service, token="s3cret", max_body_bytes=1024)))
    await client.start_server()
    yield bus, service, client
    await client.close()
    await service.stop()


async def test_http_lookup_filter_pages_and_cache_invalidation(serving):
    bus, service, client = serving
    await bus.publish("validated", [env(i, user=f"u{i % 2}") for i in range(12)])
    await wait_until(lambda: service.records_in.value == 12)
    resp = await client.get("/records/r3")
    assert resp.status == 200 and (await resp.json())["payload"] == {"n": 3, "user": "u1"}
    resp = await client.get("/records", params={"user": "u0", "limit": "4"})
    body = await resp.json()
    assert [r["id"] for r in body["items"]] == ["r0", "r2", "r4", "r6"] and body["next_cursor"]
    resp = await client.get("/records", params={"user": "u0", "limit": "4", "cursor": body["next_cursor"]})
    assert [r["id"] for r in (await resp.json())["items"]] == ["r8", "r10"]
    # cached negative lookup, then a write makes the record visible at once
    assert (await client.get("/records/r99")).status == 404
    hits_before = service.cache_hits.value
    await client.get("/records", params={"user": "u0", "limit": "4"})
    assert service.cache_hits.value == hits_before + 1
    await bus.publish("validated", [env(99, user="u0")])
    await wait_until(lambda: service.records_in.value == 13)
    assert (await client.get("/records/r99")).status == 200
    resp = await client.get("/records", params={"user": "u0", "limit": "50"})
    assert "r99" in [r["id"] for r in (await resp.json())["items"]]
    # default limit applies
    assert len((await (await client.get("/records")).json())["items"]) == 5


@pytest.mark.parametrize("params, message", [
    ({"limit": "abc"}, "'limit' must be an integer"),
    ({"limit": "0"}, "'limit' must be between 1 and 50"),
    ({"limit": "100000"}, "'limit' must be between 1 and 50"),
    ({"nope": "x"}, "cannot filter on 'nope'"),
    ({"n": "seven"}, "filter 'n' expects an integer value"),
    ({"cursor": "%%%"}, "invalid cursor"),
])
async def test_http_bad_query_parameters_get_400_with_message(serving, params, message):
    _, _, client = serving
    resp = await client.get("/records", params=params)
    assert resp.status == 400
    assert message in (await resp.json())["error"]


async def test_http_unknown_ids_auth_and_unknown_routes(serving):
    bus, service, client = serving
    await bus.publish("validated", [env(1, user="u")])
    await wait_until(lambda: service.records_in.value == 1)
    resp = await client.get("/records/missing")
    assert resp.status == 404 and (await resp.json())["error"] == "no record with id 'missing'"
    resp = await client.delete("/records/r1")
    assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    resp = await client.delete("/records/r1", headers={"Authorization": "Bearer wrong"})
    assert resp.status == 403
    resp = await client.delete("/records/r1", headers={"Authorization": "Bearer s3cret"})
    assert resp.status == 200
    assert (await client.get("/records/r1")).status == 404
    resp = await client.get("/nowhere")
    assert resp.status == 404 and "error" in await resp.json()
    resp = await client.post("/records", data=b"x")
    assert resp.status == 405


async def test_health_ready_and_metrics(serving):
    bus, service, client = serving
    resp = await client.get("/health")
    assert resp.status == 200 and (await resp.json())["services"][0]["state"] == "running"
    assert (await client.get("/ready")).status == 200
    text = await (await client.get("/metrics")).text()
    assert 'engine_service_up{service="serving"} 1' in text
    assert "# TYPE engine_serving_request_seconds histogram" in text
    await service.subscription.stop()
    assert (await client.get("/ready")).status == 503


def test_time_range_and_descending_pages():
    store = RecordStore(indexes=["user"]).open()
    store.put_many([env(i, user="u") for i in range(10)])  # times 1000..1009
    items, cursor = store.query({"user": "u"}, limit=3, order="desc", since=1002, until=1008)
    assert [r["id"] for r in items] == ["r7", "r6", "r5"]
    items, cursor = store.query({"user": "u"}, limit=3, order="desc", since=1002, until=1008, cursor=cursor)
    assert [r["id"] for r in items] == ["r4", "r3", "r2"] and cursor is None
    _, asc_cursor = store.query({}, limit=2)
    with pytest.raises(QueryError, match="continues an order=asc query; it cannot be used with order=desc"):
        store.query({}, limit=2, order="desc", cursor=asc_cursor)
    with pytest.raises(QueryError, match="empty time range"):
        store.query({}, limit=2, since=5, until=5)


async def test_http_order_and_time_parameters(serving):
    bus, service, client = serving
    await bus.publish("validated", [env(i, user="u") for i in range(6)])
    await wait_until(lambda: service.records_in.value == 6)
    body = await (await client.get("/records", params={"order": "desc", "limit": "2", "since": "1003"})).json()
    assert [r["id"] for r in body["items"]] == ["r5", "r4"]
    for params, message in [({"order": "up"}, "'order' must be 'asc' or 'desc'"),
                            ({"since": "yesterday"}, "'since' must be an integer"),
                            ({"since": "9", "until": "3"}, "empty time range")]:
        resp = await client.get("/records", params=params)
        assert resp.status == 400 and message in (await resp.json())["error"]
