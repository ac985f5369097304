"""Serving API under load: many concurrent aiohttp clients against ``engine serve`` on loopback.

Two drivers, one workload (a mix of 70% ``GET /records/{id}`` over 10,000 stored records, 5% of them
unknown ids answered 404, and 30% filtered pages ``GET /records?user=..&limit=20``):

* pytest-benchmark / ``python -m benchmarks serving``: a fixed number of requests (``REQUESTS``) by
  ``CLIENTS`` concurrent clients; the engine (TTL read cache on) against two baselines measured in the
  same run: the same service with the cache off, and a bare aiohttp app answering from a dict (the HTTP
  stack's ceiling, so its ratio is below 1 by design).
* ``python -m benchmarks.bench_serving [--clients N] [--seconds S]``: the bounded-time load test;
  prints requests/s, p50/p99 latency, error count and the server's memory before and after.

Each server runs in its own process (started once per configuration and reused), so client and server
do not share one event loop; an unexpected status or a connection error counts as an error.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._harness import Case, pytest_cases, run_case_with_benchmark

N_RECORDS = 10_000
CLIENTS = 64
REQUESTS = 4_000
SEED = 20261126
ROOT = Path(__file__).resolve().parent.parent

_servers: dict[str, tuple[subprocess.Popen, str]] = {}

BARE_APP = r"""
import json, sys
from aiohttp import web
records = {f"r{i}": {"id": f"r{i}", "payload": {"user": f"u{i % 100}", "n": i}} for i in range(N_RECORDS_HERE)}
by_user = {}
for r in records.values():
    by_user.setdefault(r["payload"]["user"], []).append(r)
async def one(request):
    r = records.get(request.match_info["id"])
    if r is None:
        return web.json_response({"error": "not found"}, status=404)
    return web.json_response(r)
async def many(request):
    limit = int(request.query.get("limit", "20"))
    return web.json_response({"items": by_user.get(request.query.get("user"), [])[:limit], "next_cursor": None})
app = web.Application()
app.router.add_get("/records/{id}", one)
app.router.add_get("/records", many)
async def health(request):
    return web.json_response({"ok": True})
app.router.add_get("/ready", health)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=lambda *a: print("serving on http://127.0.0.1:" + sys.argv[1] + " x", flush=True), access_log=None)
""".replace("N_RECORDS_HERE", str(N_RECORDS))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop_all() -> None:
    for proc, _ in _servers.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


atexit.register(_stop_all)


def _records() -> list[dict]:
    return [{"id": f"r{i}", "user": f"u{i % 100}", "n": i, "note": "x" * 40} for i in range(N_RECORDS)]


def start_server(kind: str) -> str:
    """Start (once) a server of ``kind`` ("cache", "nocache", "bare") loaded with the records; its URL."""
    if kind in _servers and _servers[kind][0].poll() is None:
        return _servers[kind][1]
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if kind == "bare":
        argv = [sys.executable, "-c", BARE_APP, str(port)]
    else:
        folder = Path(tempfile.mkdtemp(prefix=f"bench-serving-{kind}-"))
        config = {
            "name": f"bench {kind}", "data_dir": str(folder), "http": {"port": port, "max_body_bytes": 8 << 20},
            "services": [
                {"kind": "ingestion", "name": "ingest", "output": "validated", "id_field": "id"},
                {"kind": "serving", "name": "serving", "input": "validated", "indexes": {"user": "text"},
                 "cache_ttl_ms": 5_000 if kind == "cache" else 0, "cache_max_entries": 20_000,
                 "max_batch": 2_000},
            ]}
        (folder / "platform.yaml").write_text(json.dumps(config))
        argv = [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())",
                "serve", str(folder / "platform.yaml")]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    line = proc.stdout.readline().decode()
    if " on http://" not in line:
        proc.kill()
        raise RuntimeError(f"{kind} server did not start: {line!r}")
    url = f"http://127.0.0.1:{port}"
    _servers[kind] = (proc, url)
    if kind != "bare":
        asyncio.run(_preload(url))
    return url


async def _preload(url: str) -> None:
    import aiohttp

    records = _records()
    async with aiohttp.ClientSession() as http:
        for i in range(0, len(records), 2_000):
            async with http.post(f"{url}/ingest", json=records[i:i + 2_000]) as resp:
                assert resp.status == 200, await resp.text()
        for _ in range(600):
            async with http.get(f"{url}/records/r{N_RECORDS - 1}") as resp:
                if resp.status == 200:
                    return
            await asyncio.sleep(0.05)
    raise RuntimeError("records were not stored in time")


def _request_plan(n: int, seed: int) -> list[tuple[str, int]]:
    """(path, expected status) pairs: the workload's request mix, seeded."""
    rng = random.Random(seed)
    plan = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.05:
            plan.append((f"/records/missing-{rng.randrange(1000)}", 404))
        elif roll < 0.70:
            plan.append((f"/records/r{int(rng.paretovariate(1.2)) % N_RECORDS}", 200))  # skewed: hot keys
        else:
            plan.append((f"/records?user=u{rng.randrange(100)}&limit=20", 200))
    return plan


async def run_load(url: str, clients: int = CLIENTS, *, requests: int | None = None,
                   seconds: float | None = None, seed: int = SEED) -> dict:
    """``clients`` concurrent clients until ``requests`` are done or ``seconds`` have passed."""
    import aiohttp

    plan = _request_plan(requests or 100_000, seed)
    latencies: list[float] = []
    errors: list[str] = []
    position = 0
    loop = asyncio.get_running_loop()
    deadline = None if seconds is None else loop.time() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(url, connector=connector) as http:
        async def client():
            nonlocal position
            while position < len(plan) and (deadline is None or loop.time() < deadline):
                path, expected = plan[position % len(plan)]
                position += 1
                started = time.perf_counter()
                try:
                    async with http.get(path) as resp:
                        await resp.read()
                        if resp.status != expected:
                            errors.append(f"{path}: {resp.status}")
                except aiohttp.ClientError as exc:
                    errors.append(f"{path}: {exc!r}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    n = len(latencies)
    return {"requests": n, "seconds": elapsed, "rps": n / elapsed if elapsed else 0.0,
            "p50_ms": latencies[n // 2] * 1e3 if n else float("nan"),
            "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1e3 if n else float("nan"),
            "errors": len(errors), "first_errors": errors[:5]}


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def _case(kind: str):
    def setup():
        return start_server(kind)

    def run(url):
        stats = asyncio.run(run_load(url, CLIENTS, requests=REQUESTS))
        if stats["errors"]:
            raise AssertionError(f"{kind}: {stats['errors']} errors, e.g. {stats['first_errors']}")
        return stats["requests"]

    return setup, run


def _same_count(engine_result, other_result):
    assert engine_result == other_result == REQUESTS, (engine_result, other_result)


_GROUP = f"serving API, {CLIENTS} clients, {REQUESTS} requests"
CASES = [
    Case(_GROUP, "engine", *_case("cache"), repeat=3),
    Case(_GROUP, "no read cache", *_case("nocache"), target=">= 1x (the cache must not cost)", repeat=3,
         check=_same_count),
    Case(_GROUP, "bare aiohttp dict", *_case("bare"), target="ceiling (< 1x expected)", repeat=3,
         check=_same_count),
]


@pytest_cases(CASES)
def test_serving(benchmark, case):
    run_case_with_benchmark(benchmark, case)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_serving", description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--kind", choices=("cache", "nocache", "bare"), default="cache")
    args = parser.parse_args(argv)
    url = start_server(args.kind)
    proc = _servers[args.kind][0]
    rss_before = _rss_kb(proc.pid)
    asyncio.run(run_load(url, args.clients, seconds=1.0))  # warm-up
    stats = asyncio.run(run_load(url, args.clients, seconds=args.seconds))
    rss_after = _rss_kb(proc.pid)
    second = asyncio.run(run_load(url, args.clients, seconds=args.seconds))
    rss_final = _rss_kb(proc.pid)
    print(f"serving load test ({args.kind}): {args.clients} clients, {args.seconds:.0f} s, loopback, seed {SEED}")
    for label, s in (("run 1", stats), ("run 2", second)):
        print(f"  {label}: {s['requests']} requests, {s['rps']:.0f} req/s, p50 {s['p50_ms']:.2f} ms, "
              f"p99 {s['p99_ms']:.2f} ms, errors {s['errors']} {s['first_errors'] or ''}")
    print(f"  server RSS: {rss_before / 1024:.1f} MiB after load-up, {rss_after / 1024:.1f} MiB after run 1, "
          f"{rss_final / 1024:.1f} MiB after run 2")
    _stop_all()
    return 1 if stats["errors"] or second["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
