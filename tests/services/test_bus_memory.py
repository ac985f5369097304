"""InMemoryBus: ordering, consumer-group resume, at-least-once retry, dead letters, backpressure, dedup."""

import asyncio

import pytest

from engine.services.bus import BusError, Deduplicator, InMemoryBus
from engine.services.envelope import Envelope
from tests.waiting import wait_until


def env(i, **payload):
    return Envelope(id=f"e{i}", source="test", time=i, payload={"i": i, **payload})


async def test_delivers_in_order_in_batches():
    bus = InMemoryBus()
    got, sizes = [], []

    async def handler(batch):
        sizes.append(len(batch))
        got.extend(e.payload["i"] for e in batch)

    await bus.publish("raw", [env(i) for i in range(25)])
    sub = await bus.subscribe("raw", "g", handler, max_batch=10)
    await wait_until(lambda: len(got) == 25)
    await bus.publish("raw", [env(i) for i in range(25, 30)])
    await wait_until(lambda: len(got) == 30)
    await sub.stop()
    assert got == list(range(30))
    assert max(sizes) <= 10
    assert bus.backlog("raw", "g") == 0


async def test_group_resumes_from_its_commit_and_groups_are_independent():
    bus = InMemoryBus()
    first = []
    sub = await bus.subscribe("raw", "a", lambda b: _extend(first, b))
    await bus.publish("raw", [env(i) for i in range(5)])
    await wait_until(lambda: len(first) == 5)
    await sub.stop()
    await bus.publish("raw", [env(i) for i in range(5, 8)])  # published while "a" is down
    second = []
    sub = await bus.subscribe("raw", "a", lambda b: _extend(second, b))
    other = []
    sub_b = await bus.subscribe("raw", "b", lambda b: _extend(other, b))
    await wait_until(lambda: len(second) == 3 and len(other) == 3)
    await sub.stop()
    await sub_b.stop()
    assert [e.id for e in second] == ["e5", "e6", "e7"]
    # "b" was unknown while "a" consumed e0..e4, so those were trimmed: declare groups up front.
    assert [e.id for e in other] == ["e5", "e6", "e7"]


async def test_declared_group_sees_everything_published_before_it_subscribes():
    bus = InMemoryBus()
    bus.declare_group("raw", "late")
    first = []
    sub = await bus.subscribe("raw", "early", lambda b: _extend(first, b))
    await bus.publish("raw", [env(i) for i in range(5)])
    await wait_until(lambda: len(first) == 5)
    late = []
    sub_late = await bus.subscribe("raw", "late", lambda b: _extend(late, b))
    await wait_until(lambda: len(late) == 5)
    await sub.stop()
    await sub_late.stop()


async def _extend(target, batch):
    target.extend(batch)


async def test_failed_handler_is_retried_then_dead_lettered_and_committed():
    bus = InMemoryBus()
    bus.declare_group("raw", "h")
    calls = []

    async def flaky(batch):
        calls.append([e.id for e in batch])
        if len(calls) < 2:
            raise RuntimeError("transient")

    sub = await bus.subscribe("raw", "g", flaky, retry_backoff=0.001)
    await bus.publish("raw", [env(1)])
    await wait_until(lambda: sub.delivered == 1)
    assert calls == [["e1"], ["e1"]]  # same batch retried

    async def broken(batch):
        raise ValueError(f"bad batch {batch[0].id}")

    sub2 = await bus.subscribe("raw", "h", broken, max_attempts=2, retry_backoff=0.001)
    await wait_until(lambda: sub2.dead_lettered == 1)
    await sub.stop()
    await sub2.stop()
    dead = bus.read_all("raw.dead-letter")
    assert [e.id for e in dead] == ["e1"]
    assert dead[0].headers["error"] == "ValueError: bad batch e1"
    assert dead[0].headers["error.group"] == "h"
    assert bus.backlog("raw", "h") == 0


async def test_stop_mid_handler_after_timeout_leaves_batch_uncommitted():
    bus = InMemoryBus()
    entered = asyncio.Event()

    async def slow(batch):
        entered.set()
        await asyncio.sleep(30)

    sub = await bus.subscribe("raw", "g", slow)
    await bus.publish("raw", [env(1), env(2)])
    await entered.wait()
    await sub.stop(timeout=0.05)
    assert bus.backlog("raw", "g") == 2  # redelivered to the next subscriber of the group
    got = []
    sub = await bus.subscribe("raw", "g", lambda b: _extend(got, b))
    await wait_until(lambda: len(got) == 2)
    await sub.stop()


async def test_graceful_stop_finishes_batch_in_hand():
    bus = InMemoryBus()
    entered = asyncio.Event()
    done = []

    async def slowish(batch):
        entered.set()
        await asyncio.sleep(0.05)
        done.extend(batch)

    sub = await bus.subscribe("raw", "g", slowish)
    await bus.publish("raw", [env(1)])
    await entered.wait()
    await sub.stop(timeout=5)
    assert len(done) == 1 and bus.backlog("raw", "g") == 0


async def test_duplicates_within_window_are_dropped():
    bus = InMemoryBus()
    got = []
    sub = await bus.subscribe("raw", "g", lambda b: _extend(got, b), dedup_window=100)
    await bus.publish("raw", [env(1), env(2), env(1)])
    await bus.publish("raw", [env(2), env(3)])
    await wait_until(lambda: bus.backlog("raw", "g") == 0)
    await sub.stop()
    assert [e.id for e in got] == ["e1", "e2", "e3"]
    assert sub.duplicates == 2


def test_deduplicator_window_is_bounded():
    d = Deduplicator(window=3)
    d.remember([env(i) for i in range(10)])
    assert "e9" in d and "e7" in d and "e6" not in d
    assert len(d._seen) == 3


async def test_publisher_waits_when_retention_is_full():
    bus = InMemoryBus(max_retained=4)
    got = []
    gate = asyncio.Event()

    async def gated(batch):
        await gate.wait()
        got.extend(batch)

    sub = await bus.subscribe("raw", "g", gated, max_batch=2)
    publish = asyncio.ensure_future(bus.publish("raw", [env(i) for i in range(10)]))
    await asyncio.sleep(0.05)
    assert not publish.done()  # backpressure, nothing dropped
    assert bus.channel_size("raw") <= 4
    gate.set()
    await asyncio.wait_for(publish, 5)
    await wait_until(lambda: len(got) == 10)
    await sub.stop()
    assert [e.payload["i"] for e in got] == list(range(10))


async def test_bad_arguments_are_refused():
    bus = InMemoryBus()
    with pytest.raises(BusError, match="invalid channel name"):
        await bus.publish("no spaces", [env(1)])
    with pytest.raises(BusError, match="expected Envelope"):
        await bus.publish("raw", [{"id": 1}])
    sub = await bus.subscribe("raw", "g", lambda b: _extend([], b))
    with pytest.raises(BusError, match="already has a running subscription"):
        await bus.subscribe("raw", "g", lambda b: _extend([], b))
    await sub.stop()
