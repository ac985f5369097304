"""The platform app as a whole: bad input on every kind of endpoint gets the right status and a message,
failures show in /health, routes cannot clash silently, loopback by default, JSON logs."""

import asyncio
import json
import logging

import aiohttp
import pytest

from engine.errors import ServiceError
from engine.services.base import Service
from engine.services.bus import InMemoryBus
from engine.services.config import parse_config
from engine.services.http import AppServer, make_platform_app
from engine.services.logs import JsonFormatter
from engine.services.platform import Platform
from engine.services.registry import ServiceRegistry
from engine.services.serving import ServingService

TOKEN = "tok"


def config(tmp_path):
    return parse_config({
        "http": {"port": 0, "token": TOKEN, "max_body_bytes": 1000},
        "services": [
            {"kind": "ingestion", "name": "ingest", "output": "raw", "id_field": "id"},
            {"kind": "quality", "name": "quality", "input": "raw", "output": "ok", "database": ":memory:",
             "rules": [{"rule": "not_null", "field": "id"}]},
            {"kind": "serving", "name": "serving", "input": "ok", "database": ":memory:",
             "indexes": {"n": "integer"}, "default_limit": 10, "max_limit": 20},
        ]}, base_dir=tmp_path)


@pytest.mark.parametrize("method, path, kwargs, status, message", [
    ("GET", "/records/nope", {}, 404, "no record with id 'nope'"),
    ("GET", "/records?limit=-1", {}, 400, "'limit' must be between 1 and 20"),
    ("GET", "/records?limit=1e9", {}, 400, "'limit' must be an integer"),
    ("GET", "/records?n=abc", {}, 400, "filter 'n' expects an integer value, got 'abc'"),
    ("GET", "/records?n=1&n=2", {}, 400, "filter 'n' given 2 times"),
    ("GET", "/records?color=red", {}, 400, "cannot filter on 'color': not an indexed field (indexed: n)"),
    ("GET", "/records?cursor=AAAA", {}, 400, "invalid cursor"),
    ("GET", "/quality/trend?limit=x", {}, 400, "'limit' must be an integer"),
    ("GET", "/quality/quarantine", {}, 401, "Authorization: Bearer"),
    ("GET", "/quality/quarantine", {"headers": {"Authorization": "Bearer nope"}}, 403, "invalid bearer token"),
    ("GET", "/quality/quarantine", {"headers": {"Authorization": "Basic dG9r"}}, 401, "Bearer"),
    ("POST", "/ingest", {"json": [{"id": 1}]}, 401, "Bearer"),
    ("DELETE", "/records/x", {}, 401, "Bearer"),
    ("POST", "/ingest", {"headers": {"Authorization": f"Bearer {TOKEN}"}, "data": b"[" + b'{"id": 1},' * 200 + b"]"},
     413, "Maximum request body size 1000 exceeded"),
    ("POST", "/ingest", {"headers": {"Authorization": f"Bearer {TOKEN}"}, "data": b"\xff\xfe"}, 400,
     "request body is not valid JSON"),
    ("GET", "/no/such/route", {}, 404, "Not Found"),
    ("PUT", "/records/x", {}, 405, "Method Not Allowed"),
])
async def test_bad_input_gets_status_and_message(tmp_path, method, path, kwargs, status, message):
    async with Platform(config(tmp_path)) as platform:
        async with aiohttp.ClientSession(base_url=platform.url) as http:
            async with http.request(method, path, **kwargs) as resp:
                body = await resp.json()
                assert resp.status == status, body
                assert message in body["error"], body
                assert body["status"] == status
            # nothing crashed: the platform still answers
            async with http.get("/health") as resp:
                assert resp.status == 200


class Crashing(Service):
    kind = "test"

    async def on_start(self):
        self.spawn(self._work(), "work")

    async def _work(self):
        await asyncio.sleep(0)
        raise RuntimeError("disk on fire")


async def test_a_crashed_background_task_turns_health_red():
    registry = ServiceRegistry()
    svc = registry.register(Crashing("worker"))
    await svc.start()
    await asyncio.sleep(0.01)
    async with AppServer(make_platform_app(registry)) as server:
        async with aiohttp.ClientSession(base_url=server.url) as http:
            async with http.get("/health") as resp:
                body = await resp.json()
                assert resp.status == 503
                assert body["services"][0]["error"] == "worker:work: RuntimeError: disk on fire"
            async with http.get("/ready") as resp:
                assert resp.status == 503
            async with http.get("/metrics") as resp:
                assert 'engine_service_up{service="worker"} 0' in await resp.text()
    await svc.stop()
    assert svc.state == "failed"


async def test_route_clashes_need_a_prefix_and_default_bind_is_loopback():
    bus = InMemoryBus()
    registry = ServiceRegistry()
    a = registry.register(ServingService("a", bus, "x"))
    b = registry.register(ServingService("b", bus, "y"))
    with pytest.raises(ServiceError, match="both serve GET /records/{id}; give one of them an http_prefix"):
        make_platform_app(registry)
    b.http_prefix = "/b"
    app = make_platform_app(registry)
    paths = {r.resource.canonical for r in app.router.routes()}
    assert {"/records/{id}", "/b/records/{id}"} <= paths
    assert AppServer(app).host == "127.0.0.1"
    with pytest.raises(ServiceError, match="already registered"):
        registry.register(ServingService("a", bus, "z"))
    with pytest.raises(ServiceError, match="no service named 'c'"):
        registry.get("c")


def test_json_log_lines_carry_the_structured_fields():
    record = logging.makeLogRecord({"name": "engine.services.base", "levelno": logging.INFO, "levelname": "INFO",
                                    "msg": "serving %s: running", "args": ("s",), "service": "s",
                                    "event": "service.running"})
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "serving s: running" and line["service"] == "s" and line["event"] == "service.running"
    assert line["ts"].endswith("Z") and line["level"] == "INFO"


async def test_a_dead_subscription_fails_the_service_and_subapps_mount(tmp_path):
    class BrokenDeadLetters(InMemoryBus):
        async def publish(self, channel, envelopes):
            if channel.endswith(".dead-letter"):
                raise ConnectionError("dead-letter channel unreachable")
            await super().publish(channel, envelopes)

    from aiohttp import web
    from engine.services.envelope import Envelope

    schemas = web.Application()

    async def schema_ids(request):
        return web.json_response(["orders/1"])

    schemas.router.add_get("/ids", schema_ids)
    bus = BrokenDeadLetters()
    async with Platform(config(tmp_path), bus=bus, subapps={"/schemas": schemas}) as platform:
        serving = platform.service("serving")
        serving.store.close()  # every write now fails, retries run out, and the dead letter cannot be sent
        await bus.publish("ok", [Envelope(id="a", source="t", time=0, payload={})])
        for _ in range(200):
            if serving.state == "failed":
                break
            await asyncio.sleep(0.01)
        assert serving.state == "failed"
        assert "dead-letter channel unreachable" in serving.error
        async with aiohttp.ClientSession(base_url=platform.url) as http:
            async with http.get("/health") as resp:
                assert resp.status == 503
            async with http.get("/schemas/ids") as resp:
                assert await resp.json() == ["orders/1"]


def test_the_example_platform_config_validates():
    from pathlib import Path

    from engine.services.config import load_config

    example = Path(__file__).resolve().parents[2] / "examples" / "services" / "platform.yaml"
    config = load_config(example)
    assert [s.name for s in config.services] == ["ingest", "enrich", "quality", "serving"]
    assert config.path(config.services[0].source.path).is_file()


def test_public_names_are_exported_sorted():
    import engine.services as services

    assert services.__all__ == sorted(services.__all__)
    assert all(hasattr(services, name) for name in services.__all__)
