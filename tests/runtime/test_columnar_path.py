"""The columnar path: numpy columns in, kernels only, numpy columns out; same results as records."""

from __future__ import annotations

import numpy as np
import pytest

from connectors.memory import ArraySink, ArraySource, CollectionSource, CollectSink
from engine import BoundedOutOfOrderness, Dataflow, Sliding, Tumbling, agg


class StrictArraySink(ArraySink):
    """Fails if a batch arrives carrying Python records (the columnar path must not build any)."""

    async def write(self, batch):
        assert not batch.has_records, "a columnar job built per-record Python objects"
        await super().write(batch)


def columns(n=3000, seed=7):
    rng = np.random.default_rng(seed)
    print(f"seed={seed}")
    ts = np.arange(n, dtype=np.int64) * 3 - 4000 - rng.integers(0, 400, size=n)
    return {"ts": ts, "user": rng.integers(0, 25, size=n), "amount": rng.integers(-10, 100, size=n).astype(np.float64),
            "qty": rng.integers(0, 5, size=n)}


def aggregate_flow(source, sink, spec):
    flow = Dataflow("columnar")
    stream = flow.source(source, timestamp="ts", watermark=BoundedOutOfOrderness(300))
    stream.key_by("user").window(spec, allowed_lateness=50).aggregate(
        count=agg.count(), total=agg.sum("amount"), items=agg.sum("qty"), low=agg.min("amount"), avg=agg.mean("qty")
    ).sink(sink)
    return flow


@pytest.mark.parametrize("spec", [Tumbling(500), Sliding(500, 200, offset=50)])
@pytest.mark.parametrize("batch_size", [1, 7, 1024, 3000])
def test_columnar_results_equal_the_record_path(spec, batch_size):
    data = columns()
    flow = aggregate_flow(ArraySource(data, batch_size=batch_size), array_sink := StrictArraySink(), spec)
    flow.run()
    got = array_sink.columns()
    assert got["key"].dtype == np.int64 and got["start"].dtype == np.int64 and got["count"].dtype == np.int64
    assert got["items"].dtype == np.int64, "a sum of an integer column is reported as int"
    assert got["total"].dtype == np.float64

    records = [dict(zip(data, row)) for row in zip(*(c.tolist() for c in data.values()))]
    flow = aggregate_flow(CollectionSource(records, batch_size=batch_size), collect := CollectSink(), spec)
    flow.run()
    expected = collect.results
    assert len(expected) == len(got["key"])
    as_records = [dict(zip(got, row)) for row in zip(*(c.tolist() for c in got.values()))]
    assert as_records == expected


def test_columnar_window_results_can_continue_as_records():
    data = columns(200)
    flow = Dataflow("mixed")
    results = flow.source(ArraySource(data), timestamp="ts").key_by("user").window(Tumbling(100)).aggregate(n=agg.count())
    results.filter(lambda r: r["n"] > 1).map(lambda r: (r["key"], r["n"])).sink(out := CollectSink())
    results.sink(all_out := ArraySink())
    flow.run()
    table = all_out.columns()
    expected = [(k, n) for k, n in zip(table["key"].tolist(), table["n"].tolist()) if n > 1]
    assert out.results == expected and expected


def test_a_columnar_stream_with_a_callable_gets_dict_records():
    data = {"ts": np.array([1, 2, 3]), "v": np.array([1.5, 2.5, 3.5])}
    flow = Dataflow("callables")
    flow.source(ArraySource(data), timestamp="ts").map(lambda r: r["v"] * 2).sink(out := CollectSink())
    flow.run()
    assert out.results == [3.0, 5.0, 7.0]
