"""A short in-process load run against the serving API (the benchmark's workload and client): every
response has the expected status, and the read cache stays within its bound."""

from benchmarks.bench_serving import N_RECORDS, run_load
from engine.services.bus import InMemoryBus
from engine.services.envelope import Envelope
from engine.services.http import AppServer, make_service_app
from engine.services.serving import ServingService

from tests.waiting import wait_until


async def test_concurrent_clients_get_no_errors_and_memory_stays_bounded():
    bus = InMemoryBus()
    serving = ServingService("serving", bus, "validated", indexes={"user": "text"}, cache_max_entries=300,
                             cache_ttl_ms=60_000, max_batch=5_000)
    await serving.start()
    await bus.publish("validated", [Envelope(id=f"r{i}", source="load", time=i, payload={"user": f"u{i % 100}", "n": i})
                                    for i in range(N_RECORDS)])
    await wait_until(lambda: serving.records_in.value == N_RECORDS)
    async with AppServer(make_service_app(serving)) as server:
        stats = await run_load(server.url, clients=32, requests=1_500)
    await serving.stop()
    print(stats)
    assert stats["errors"] == 0, stats["first_errors"]
    assert stats["requests"] == 1_500
    assert len(serving.cache) <= 300
    assert serving.cache_hits.value > 0 and serving.cache_misses.value > 0
