"""The runtime (compiled kernels, any batch size) against the pure-Python `_reference` kernels driven
directly, one record at a time, by a few lines of loop here (no runtime code involved)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from connectors.memory import CollectionSource, CollectSink
from engine import BoundedOutOfOrderness, Dataflow, Session, Sliding, Tumbling, _reference, agg

INT64_MAX = 2**63 - 1


def random_records(seed, n=300):
    rng = random.Random(seed)
    print(f"seed={seed}")
    return [
        {"ts": -20_000 + i * 37 - rng.randint(0, 900), "k": rng.choice("abcd"), "v": rng.randint(-20, 20)}
        for i in range(n)
    ]


def reference_windows(records, spec, delay, lateness):
    """Final result per window and the late records, from the twin kernels, record by record."""
    tracker = _reference.WatermarkTracker(delay)
    keys = _reference.KeyInterner()
    session = isinstance(spec, Session)
    table = _reference.SessionTable(spec.gap, lateness, 1) if session else _reference.WindowAggTable(spec.size, lateness, 1)
    final = {}
    late = []

    def collect(fired):
        if session:  # sessions emitted earlier and since merged into a bigger one are superseded
            for key_id, start, end in zip(fired.merged_key_ids.tolist(), fired.merged_starts.tolist(),
                                          fired.merged_ends.tolist()):
                final.pop((keys.key(key_id), start, end), None)
        for key_id, start, end, count, total in zip(fired.key_ids.tolist(), fired.starts.tolist(), fired.ends.tolist(),
                                                    fired.counts.tolist(), fired.sums[:, 0].tolist()):
            final[(keys.key(key_id), start, end)] = (count, total)

    for record in records:
        ts = np.array([record["ts"]], dtype=np.int64)
        wm = tracker.advance(ts)
        key_id = keys.intern([record["k"]])
        values = np.array([[float(record["v"])]])
        if session:
            if table.add(key_id, ts, values, wm)[0]:
                late.append(record)
        else:
            if isinstance(spec, Tumbling):
                rows, starts = np.zeros(1, dtype=np.int64), _reference.tumbling_starts(ts, spec.size, spec.offset)
            else:
                rows, starts = _reference.sliding_windows(ts, spec.size, spec.slide, spec.offset)
            lm = _reference.late_mask(wm[rows], starts + spec.size, lateness)
            if lm.all():
                late.append(record)
            table.add(key_id[rows][~lm], starts[~lm], values[rows][~lm])
        collect(table.fire(tracker.current))
        table.purge(tracker.current)
    tracker.end_input()
    collect(table.fire(INT64_MAX))
    return final, late


@pytest.mark.parametrize("spec", [Tumbling(1000), Tumbling(700, offset=-300), Sliding(1000, 300), Session(150)])
@pytest.mark.parametrize("seed", [1, 2])
def test_windows_agree_with_the_reference_kernels(spec, seed):
    records = random_records(seed)
    final, late = reference_windows(records, spec, delay=400, lateness=200)
    for batch_size in (1, 7, 1024):
        flow = Dataflow("oracle")
        results = flow.source(CollectionSource(records, batch_size=batch_size), timestamp="ts",
                              watermark=BoundedOutOfOrderness(400)).key_by("k").window(spec, allowed_lateness=200).aggregate(
            count=agg.count(), total=agg.sum("v"))
        results.sink(out := CollectSink())
        results.late().sink(late_out := CollectSink())
        flow.run()
        got = {}
        for r in out.results:
            got[(r["key"], r["start"], r["end"])] = (r["count"], r["total"])
        # Sessions emitted and later merged away are superseded; compare the windows the twin ends with.
        assert {w: got[w] for w in final} == final
        assert late_out.results == late


@pytest.mark.parametrize("seed", [3, 4])
def test_interval_join_agrees_with_the_reference_kernels(seed):
    records = random_records(seed, n=200)
    for i, r in enumerate(records):
        r["side"] = "L" if i % 3 else "R"
        r["id"] = i
    tracker = _reference.WatermarkTracker(300)
    keys = _reference.KeyInterner()
    buffers = _reference.IntervalJoinBuffers(-250, 400)
    expected = []
    for r in records:
        ts = np.array([r["ts"]], dtype=np.int64)
        wm = tracker.advance(ts)
        side = _reference.LEFT if r["side"] == "L" else _reference.RIGHT
        pairs = buffers.process(side, keys.intern([r["k"]]), ts, np.array([r["id"]], dtype=np.int64), wm)
        expected += list(zip(pairs.left_rows.tolist(), pairs.right_rows.tolist()))
        buffers.purge(tracker.current)
    for batch_size in (1, 7, 1024):
        flow = Dataflow("join-oracle")
        stream = flow.source(CollectionSource(records, batch_size=batch_size), timestamp="ts",
                             watermark=BoundedOutOfOrderness(300))
        stream.filter(lambda r: r["side"] == "L").key_by("k").interval_join(
            stream.filter(lambda r: r["side"] == "R").key_by("k"), -250, 400, combine=lambda a, b: (a["id"], b["id"])
        ).sink(out := CollectSink())
        flow.run()
        assert sorted(out.results) == sorted(expected) and expected
