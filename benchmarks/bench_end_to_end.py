"""End to end through the public API: 1,000,000 events, 1,000 keys, 1 s tumbling windows, watermark lag
5 s, count + sum per key and window (the workload and baselines are in `benchmarks/e2e_baselines.py`).

Two engine cases, each measured against the baselines in the same run:

* columnar: ``ArraySource`` -> ``key_by("user")`` -> ``Tumbling(1000)`` -> ``aggregate`` -> ``ArraySink``
  (field-name extractors; only kernels touch the records; batch size 65,536);
* callable: dict records with ``timestamp=lambda r: r["ts"]`` and ``key_by(lambda r: r["user"])`` into a
  ``CollectSink`` of result dicts (the per-record path a Faust or Bytewax user would write).
"""

from __future__ import annotations

import functools


from benchmarks import e2e_baselines as base
from benchmarks._harness import Case, pytest_cases, run_case_with_benchmark
from connectors.memory import ArraySink, ArraySource, CollectionSource, CollectSink
from engine import BoundedOutOfOrderness, Dataflow, Tumbling, agg


@functools.lru_cache(maxsize=1)
def _columns():
    return base.make_columns()


@functools.lru_cache(maxsize=1)
def _records():
    return base.make_records(_columns())


def engine_columnar(columns) -> dict:
    flow = Dataflow("e2e-columnar")
    (
        flow.source(ArraySource(columns, batch_size=65_536), timestamp="ts", watermark=BoundedOutOfOrderness(base.LAG))
        .key_by("user")
        .window(Tumbling(base.WINDOW))
        .aggregate(count=agg.count(), total=agg.sum("amount"))
        .sink(sink := ArraySink())
    )
    flow.run()
    return sink.columns()


def engine_callable(records) -> list:
    flow = Dataflow("e2e-callable")
    (
        flow.source(CollectionSource(records, batch_size=65_536), timestamp=lambda r: r["ts"],
                    watermark=BoundedOutOfOrderness(base.LAG))
        .key_by(lambda r: r["user"])
        .window(Tumbling(base.WINDOW))
        .aggregate(count=agg.count(), total=agg.sum("amount"))
        .sink(sink := CollectSink())
    )
    flow.run()
    return sink.results


COLUMNAR = "end-to-end 1M events, columnar path"
CALLABLE = "end-to-end 1M events, callable path"

CASES = [
    Case(COLUMNAR, "engine", _columns, engine_columnar),
    Case(COLUMNAR, "numpy streaming", _columns, base.numpy_streaming, target="> 1x", check=base.assert_same_windows),
    Case(COLUMNAR, "python loop", _records, base.python_loop, target=">= 10x", repeat=3, check=base.assert_same_windows),
    Case(CALLABLE, "engine", _records, engine_callable, repeat=3),
    Case(CALLABLE, "python loop", _records, base.python_loop, target=">= 1.5x", repeat=3, check=base.assert_same_windows),
]


@pytest_cases(CASES)
def test_end_to_end(benchmark, case):
    run_case_with_benchmark(benchmark, case)
