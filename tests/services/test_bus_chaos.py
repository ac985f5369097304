"""At-least-once under chaos on the in-memory bus: random handler failures, random crashes between
handling and committing, random batch sizes. Every published envelope is handled (none lost), and an
idempotent consumer ends up with each exactly once."""

import asyncio
import random

import pytest

from engine.services.bus import InMemoryBus
from engine.services.envelope import Envelope


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
async def test_nothing_lost_under_failures_and_crashes(seed):
    print(f"seed={seed}")
    rng = random.Random(seed)
    bus = InMemoryBus(max_retained=rng.choice([7, 50, 1000]))
    n = 300
    stored: dict[str, int] = {}  # the idempotent consumer's state: id -> times handled
    handled_total = 0

    async def producer():
        for start in range(0, n, 13):
            await bus.publish("in", [Envelope(id=f"e{i}", source="p", time=i, payload={"i": i})
                                     for i in range(start, min(n, start + 13))])
            await asyncio.sleep(0)

    bus.declare_group("in", "g")
    producing = asyncio.ensure_future(producer())
    while True:
        crash_after = rng.randint(1, 6)  # batches this incarnation handles before it "crashes"
        calls = 0
        crashed = asyncio.Event()

        async def handler(batch):
            nonlocal calls, handled_total
            calls += 1
            if rng.random() < 0.2:
                raise RuntimeError("transient")  # retried by the bus
            for env in batch:
                stored[env.id] = stored.get(env.id, 0) + 1
                handled_total += 1
            if calls >= crash_after:
                crashed.set()
                await asyncio.Event().wait()  # hang: this batch is never committed

        sub = await bus.subscribe("in", "g", handler, max_batch=rng.randint(1, 20), max_attempts=10,
                                  retry_backoff=0.0, dedup_window=rng.choice([0, 5, 100]))
        done = asyncio.ensure_future(crashed.wait())
        await asyncio.wait({done}, timeout=0.3)
        done.cancel()
        await sub.stop(timeout=0.01)
        if producing.done() and bus.backlog("in", "g") == 0:
            break
    await producing
    assert set(stored) == {f"e{i}" for i in range(n)}  # none lost
    assert not bus.read_all("in.dead-letter")
    assert handled_total >= n  # redeliveries happened and were absorbed by the idempotent consumer
