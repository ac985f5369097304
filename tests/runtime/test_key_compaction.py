"""Keys whose state is gone are forgotten, so memory stays bounded when keys never repeat for long
(orders joined by order id, sessions of short-lived users), and results do not change."""

from __future__ import annotations

import random

import pytest

import semantics_model as model
from connectors.memory import CollectionSource, CollectSink
from engine import BoundedOutOfOrderness, Dataflow, Session, Sliding, Tumbling, agg
from engine.runtime.keys import KeyDomain


@pytest.fixture
def small_compaction(monkeypatch):
    monkeypatch.setattr(KeyDomain, "COMPACT_MIN_KEYS", 32)


def orders(n, seed):
    rng = random.Random(seed)
    print(f"seed={seed}")
    out = []
    for i in range(n):
        out.append({"id": i, "order": f"o{i}", "side": "L", "ts": i * 10})
        if rng.random() < 0.8:
            out.append({"id": n + i, "order": f"o{i}", "side": "R", "ts": i * 10 + rng.randint(0, 120)})
    out.sort(key=lambda r: r["ts"])
    return out


@pytest.mark.parametrize("batch_size", [1, 64])
def test_a_join_keyed_by_unique_ids_keeps_its_keys_bounded(small_compaction, batch_size):
    records = orders(3000, seed=5)
    flow = Dataflow("orders")
    stream = flow.source(CollectionSource(records, batch_size=batch_size), timestamp="ts", watermark=BoundedOutOfOrderness(50))
    stream.filter(lambda r: r["side"] == "L").key_by("order", name="left_key").interval_join(
        stream.filter(lambda r: r["side"] == "R").key_by("order", name="right_key"), 0, 100,
        combine=lambda a, b: (a["id"], b["id"])).sink(out := CollectSink())
    flow.run()
    pairs, _ = model.interval_join(records, 50, 0, 100, lambda r: r["ts"], lambda r: r["order"], lambda r: r["side"] == "L")
    assert sorted(out.results) == sorted((a["id"], b["id"]) for a, b in pairs)
    metrics = flow.metrics()["left_key"]
    assert metrics["key_compactions"] > 10
    assert metrics["keys"] < 200, "only keys with buffered rows are remembered"


@pytest.mark.parametrize("spec", [Tumbling(100), Sliding(100, 40), Session(30)])
def test_windows_keyed_by_short_lived_keys_give_the_same_results_after_compactions(small_compaction, spec):
    rng = random.Random(9)
    records = [{"ts": i * 7 - rng.randint(0, 60), "k": (i // 5) * 1000 + rng.randint(0, 2), "v": rng.randint(0, 9)} for i in range(2000)]
    flow = Dataflow("short-lived")
    results = flow.source(CollectionSource(records, batch_size=50), timestamp="ts", watermark=BoundedOutOfOrderness(60)).key_by(
        "k").window(spec, allowed_lateness=20).aggregate(n=agg.count(), total=agg.sum("v"))
    results.sink(out := CollectSink())
    flow.run()
    assert flow.metrics()["key_by_1"]["key_compactions"] > 5
    if isinstance(spec, Session):
        contents, _ = model.sessions(records, 60, spec.gap, 20, lambda r: r["ts"], lambda r: r["k"])
    else:
        assign = model.tumbling(100) if isinstance(spec, Tumbling) else model.sliding(100, 40)
        contents, _ = model.windows(records, 60, assign, 20, lambda r: r["ts"], lambda r: r["k"])
    final = {}
    for r in out.results:
        final[(r["key"], r["start"], r["end"])] = (r["n"], r["total"])
    expected = {w: (len(m), sum(x["v"] for x in m)) for w, m in contents.items()}
    assert {w: final[w] for w in expected} == expected


@pytest.mark.parametrize("spec", [Tumbling(100), Session(30)])
def test_reduce_windows_survive_compactions(small_compaction, spec):
    rng = random.Random(4)
    records = [{"id": i, "ts": i * 7 - rng.randint(0, 60), "k": f"user-{i // 5}-{rng.randint(0, 2)}"} for i in range(1500)]
    flow = Dataflow("reduce-compaction")
    results = flow.source(CollectionSource(records, batch_size=40), timestamp="ts", watermark=BoundedOutOfOrderness(60)).key_by(
        "k").window(spec).reduce(lambda acc, r: acc + [r["id"]], [])
    results.sink(out := CollectSink())
    flow.run()
    assert flow.metrics()["key_by_1"]["key_compactions"] > 5
    if isinstance(spec, Session):
        contents, _ = model.sessions(records, 60, spec.gap, 0, lambda r: r["ts"], lambda r: r["k"])
    else:
        contents, _ = model.windows(records, 60, model.tumbling(100), 0, lambda r: r["ts"], lambda r: r["k"])
    final = {(r["key"], r["start"], r["end"]): sorted(r["value"]) for r in out.results}
    expected = {w: sorted(m["id"] for m in members) for w, members in contents.items()}
    assert {w: final[w] for w in expected} == expected


def test_join_state_stays_bounded_while_the_stream_runs(small_compaction):
    records = orders(4000, seed=8)
    flow = Dataflow("bounded")
    stream = flow.source(CollectionSource(records, batch_size=32), timestamp="ts", watermark=BoundedOutOfOrderness(50))
    stream.filter(lambda r: r["side"] == "L").key_by("order").interval_join(
        stream.filter(lambda r: r["side"] == "R").key_by("order"), 0, 100).sink(CollectSink())
    sizes = []

    class Sample:
        async def restore(self, execution):
            pass

        async def maybe_checkpoint(self, execution):
            sizes.append((execution.metrics["interval_join_1"].state, execution.metrics["key_by_1"].extra.get("keys", 0)))

    flow.run(checkpointer=Sample())
    assert len(sizes) > 200
    # Rows live for about (upper + watermark delay) / 10 ms per order: a few dozen, however long the stream.
    assert max(rows for rows, _ in sizes) < 100
    assert max(keys for _, keys in sizes) < 200
