"""``engine serve platform.yaml`` as a real process: serves, accepts records, stops cleanly on SIGTERM;
``mode: per-service`` runs one process per service on Kafka; bad configs fail with a message."""

import asyncio
import os
import signal
import sys
import uuid

import aiohttp
import pytest
import yaml

from engine.cli import main
from tests._broker import free_ports

RUN_ENGINE = [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())"]


async def start_serve(config_path, *extra):
    env = {**os.environ, "ENGINE_TEST_TOKEN": "cli-token"}
    proc = await asyncio.create_subprocess_exec(*RUN_ENGINE, "serve", str(config_path), *extra,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                env=env)
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    if not line:
        raise AssertionError((await proc.stderr.read()).decode()[-3000:])
    url = line.decode().split(" on ", 1)[1].split(" ", 1)[0]
    return proc, url


async def stop_serve(proc):
    proc.send_signal(signal.SIGTERM)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def poll(http, url, predicate, timeout=60):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            async with http.get(url) as resp:
                body = await resp.json()
                if predicate(resp.status, body):
                    return body
        except aiohttp.ClientError:
            pass
        if loop.time() > deadline:
            raise AssertionError(f"{url} never satisfied the condition")
        await asyncio.sleep(0.1)


def write_config(tmp_path, **overrides):
    config = {
        "name": "cli platform",
        "http": {"port": 0, "token_env": "ENGINE_TEST_TOKEN"},
        "services": [
            {"kind": "ingestion", "name": "ingest", "output": "raw", "id_field": "id"},
            {"kind": "quality", "name": "quality", "input": "raw", "output": "validated",
             "rules": [{"rule": "between", "field": "amount", "min": 0}]},
            {"kind": "serving", "name": "serving", "input": "validated", "indexes": {"user": "text"}},
        ],
        **overrides,
    }
    path = tmp_path / "platform.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def test_serve_single_process_and_sigterm(tmp_path):
    proc, url = await start_serve(write_config(tmp_path))
    try:
        async with aiohttp.ClientSession(base_url=url) as http:
            await poll(http, "/ready", lambda status, body: status == 200)
            records = [{"id": f"c{i}", "user": "ann", "amount": i - 1} for i in range(5)]
            async with http.post("/ingest", json=records) as resp:
                assert resp.status == 401
            async with http.post("/ingest", json=records, headers={"Authorization": "Bearer cli-token"}) as resp:
                assert resp.status == 200 and (await resp.json())["accepted"] == 5
            page = await poll(http, "/records?user=ann", lambda s, b: s == 200 and len(b["items"]) == 4)
            assert [r["id"] for r in page["items"]] == ["c1", "c2", "c3", "c4"]
            async with http.get("/") as resp:
                assert "cli platform" in await resp.text()
    finally:
        code, out, err = await stop_serve(proc)
    assert code == 0, err
    assert "engine serve: stopped" in out
    assert (tmp_path / "data" / "serving.db").exists()


@pytest.mark.kafka
async def test_serve_one_process_per_service_on_kafka(tmp_path, bootstrap_servers):
    ports = free_ports(4)
    config = write_config(tmp_path, mode="per-service",
                          bus={"type": "kafka", "bootstrap_servers": bootstrap_servers,
                               "topic_prefix": f"cli-{uuid.uuid4().hex[:8]}.",
                               # a SIGKILLed member holds its partitions until its session times out
                               "consumer_options": {"session_timeout_ms": 6000, "heartbeat_interval_ms": 300,
                                                    "max_poll_interval_ms": 2000}},
                          http={"port": ports[0], "token_env": "ENGINE_TEST_TOKEN"})
    raw = yaml.safe_load(config.read_text())
    for service, port in zip(raw["services"], ports[1:]):
        service["http_port"] = port
    config.write_text(yaml.safe_dump(raw))
    proc, url = await start_serve(config)
    try:
        async with aiohttp.ClientSession() as http:
            status = await poll(http, f"{url}/api/status", lambda s, b: s == 200 and b["ready"], timeout=90)
            assert {s["name"] for s in status["services"]} == {"ingest", "quality", "serving"}
            async with http.post(f"http://127.0.0.1:{ports[1]}/ingest", json=[{"id": "k1", "amount": 3}],
                                 headers={"Authorization": "Bearer cli-token"}) as resp:
                assert resp.status == 200
            await poll(http, f"http://127.0.0.1:{ports[3]}/records/k1", lambda s, b: s == 200, timeout=60)
            # a service process that dies is restarted by the supervisor and catches up
            serving_pid = next(s["pid"] for s in status["services"] if s["name"] == "serving")
            os.kill(serving_pid, signal.SIGKILL)
            async with http.post(f"http://127.0.0.1:{ports[1]}/ingest", json=[{"id": "k2", "amount": 1}],
                                 headers={"Authorization": "Bearer cli-token"}) as resp:
                assert resp.status == 200
            status = await poll(http, f"{url}/api/status", lambda s, b: b["ready"] and any(
                row["name"] == "serving" and row["restarts"] == 1 for row in b["services"]), timeout=90)
            await poll(http, f"http://127.0.0.1:{ports[3]}/records/k2", lambda s, b: s == 200, timeout=60)
            async with http.get(f"http://127.0.0.1:{ports[3]}/records/k1") as resp:
                assert resp.status == 200  # stored before the crash, still there
    finally:
        code, out, err = await stop_serve(proc)
    assert code == 0, err
    assert "engine serve: stopped" in out


def test_bad_config_exits_with_a_message(tmp_path, capsys):
    path = tmp_path / "platform.yaml"
    path.write_text(yaml.safe_dump({"services": [{"kind": "serving", "name": "s"}]}))
    assert main(["serve", str(path)]) == 2
    assert "Object missing required field `input` - at `$.services[0]`" in capsys.readouterr().err
    path.write_text(yaml.safe_dump({"bus": {"type": "memory"}, "mode": "per-service",
                                    "services": [{"kind": "serving", "name": "s", "input": "x"}]}))
    assert main(["serve", str(path)]) == 2
    assert "needs bus type 'kafka'" in capsys.readouterr().err
    assert main(["serve", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_check_validates_and_lists_the_pipeline(tmp_path, capsys):
    assert main(["serve", str(write_config(tmp_path)), "--check"]) == 0
    out = capsys.readouterr().out
    assert "OK: 'cli platform', mode single, bus memory, http 127.0.0.1:0" in out
    assert "raw -> quality:quality -> validated" in out and "ingestion:ingest -> raw" in out
