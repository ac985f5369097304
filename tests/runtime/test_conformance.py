"""The runtime against an independent per-record model of SEMANTICS.md, on random streams.

Every property runs the same flow with batch sizes 1, 7, 1024 and the whole input, and compares each
run with the model (so the runs also agree with each other). Timestamps include negative ones.
"""

from __future__ import annotations

import math
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

import semantics_model as model
from connectors.memory import CollectionSource, CollectSink
from engine import BoundedOutOfOrderness, Dataflow, Session, Sliding, Tumbling, agg

SETTINGS = settings(max_examples=50, deadline=None)


@st.composite
def streams(draw, max_size=30):
    """Records ``{"id", "ts", "k", "v", "side"}`` with event time moving forward with disorder."""
    n = draw(st.integers(0, max_size))
    base = draw(st.integers(-5_000, 5_000))
    step = draw(st.integers(0, 60))
    disorder = draw(st.integers(0, 300))
    keys = draw(st.sampled_from([["a"], ["a", "b", "c"], [1, 2]]))
    records = []
    for i in range(n):
        ts = base + i * step + draw(st.integers(-disorder, disorder))
        records.append({
            "id": i,
            "ts": ts,
            "k": draw(st.sampled_from(keys)),
            "v": draw(st.integers(-50, 50)),
            "side": draw(st.sampled_from("LR")),
        })
    return records


def batch_sizes(records):
    return [1, 7, 1024, max(1, len(records))]


def run_window(records, batch_size, spec, delay, lateness, **aggregations):
    flow = Dataflow("conformance")
    stream = flow.source(CollectionSource(records), timestamp="ts", watermark=BoundedOutOfOrderness(delay))
    windowed = stream.key_by("k").window(spec, allowed_lateness=lateness)
    results = windowed.aggregate(**aggregations) if aggregations else windowed.reduce(
        lambda acc, r: acc + [r["id"]], [], field="ids"
    )
    results.sink(out := CollectSink())
    results.late().sink(late := CollectSink())
    flow.run(batch_size=batch_size)
    return out.results, late.results, flow.metrics()


def last_emissions(results):
    """(key, start, end) -> every emission of that window, in order."""
    emitted = defaultdict(list)
    for r in results:
        emitted[(r["key"], r["start"], r["end"])].append(r)
    return emitted


def check_aggregates(results, contents, lateness):
    emitted = last_emissions(results)
    assert set(emitted) == set(contents), "windows emitted differ from the model's windows"
    for window, members in contents.items():
        values = [m["v"] for m in members]
        final = emitted[window][-1]
        assert final["count"] == len(values), window
        assert final["total"] == sum(values) and isinstance(final["total"], int), window
        assert final["low"] == min(values) and final["high"] == max(values), window
        assert math.isclose(final["avg"], sum(values) / len(values)), window
        counts = [e["count"] for e in emitted[window]]
        assert counts == sorted(counts), "an update must aggregate more records, never fewer"
        if lateness == 0:
            assert len(emitted[window]) == 1, "without allowed lateness a window fires exactly once"


AGGS = dict(count=agg.count(), total=agg.sum("v"), low=agg.min("v"), high=agg.max("v"), avg=agg.mean("v"))

specs = st.one_of(
    st.builds(lambda size, off: Tumbling(size, offset=off % size), st.integers(1, 400), st.integers(0, 399)),
    st.builds(
        lambda size, slide, off: Sliding(size, slide, offset=off % slide),
        st.integers(1, 400), st.integers(1, 250), st.integers(0, 249),
    ),
)


def assign_of(spec):
    if isinstance(spec, Tumbling):
        return model.tumbling(spec.size, spec.offset)
    return model.sliding(spec.size, spec.slide, spec.offset)


@SETTINGS
@given(records=streams(), spec=specs, delay=st.integers(0, 200), lateness=st.sampled_from([0, 0, 50, 500]))
def test_tumbling_and_sliding_windows_match_the_model(records, spec, delay, lateness):
    contents, late = model.windows(records, delay, assign_of(spec), lateness, lambda r: r["ts"], lambda r: r["k"])
    for size in batch_sizes(records):
        results, late_out, metrics = run_window(records, size, spec, delay, lateness, **AGGS)
        check_aggregates(results, contents, lateness)
        assert late_out == late, f"late output differs at batch size {size}"
        assert metrics["window_1"]["late_records"] == len(late)


@SETTINGS
@given(records=streams(), gap=st.integers(1, 300), delay=st.integers(0, 200), lateness=st.sampled_from([0, 0, 100]))
def test_session_windows_match_the_model(records, gap, delay, lateness):
    contents, late = model.sessions(records, delay, gap, lateness, lambda r: r["ts"], lambda r: r["k"])
    for size in batch_sizes(records):
        results, late_out, _ = run_window(records, size, Session(gap), delay, lateness, **AGGS)
        emitted = last_emissions(results)
        superseded = set(emitted) - set(contents)
        check_aggregates([r for r in results if (r["key"], r["start"], r["end"]) not in superseded], contents, lateness=1)
        for key, start, end in superseded:  # emitted earlier, then merged into a bigger session
            assert any(k == key and s <= start and end <= e for k, s, e in contents), (key, start, end)
        assert late_out == late, f"late output differs at batch size {size}"


@SETTINGS
@given(records=streams(), spec=st.one_of(specs, st.builds(Session, st.integers(1, 300))), delay=st.integers(0, 200),
       lateness=st.sampled_from([0, 100]))
def test_reduce_folds_each_window_in_arrival_order(records, spec, delay, lateness):
    if isinstance(spec, Session):
        contents, late = model.sessions(records, delay, spec.gap, lateness, lambda r: r["ts"], lambda r: r["k"])
    else:
        contents, late = model.windows(records, delay, assign_of(spec), lateness, lambda r: r["ts"], lambda r: r["k"])
    expected = {w: sorted(m["id"] for m in members) for w, members in contents.items()}
    for size in batch_sizes(records):
        results, late_out, _ = run_window(records, size, spec, delay, lateness)
        emitted = last_emissions(results)
        final = {w: e[-1]["ids"] for w, e in emitted.items() if w in expected}
        assert final == expected, f"batch size {size}"
        for ids in final.values():
            assert ids == sorted(ids), "records are folded in arrival order"
        assert late_out == late


@SETTINGS
@given(records=streams(), delay=st.integers(0, 200), bounds=st.tuples(st.integers(-300, 300), st.integers(0, 300)),
       exclusive=st.tuples(st.booleans(), st.booleans()))
def test_interval_join_matches_the_model(records, delay, bounds, exclusive):
    lower, upper = bounds[0], bounds[0] + bounds[1]
    pairs, late = model.interval_join(
        records, delay, lower, upper, lambda r: r["ts"], lambda r: r["k"], lambda r: r["side"] == "L", *exclusive
    )
    expected = sorted((left["id"], right["id"]) for left, right in pairs)
    for size in batch_sizes(records):
        flow = Dataflow("join")
        stream = flow.source(CollectionSource(records), timestamp="ts", watermark=BoundedOutOfOrderness(delay))
        left = stream.filter(lambda r: r["side"] == "L").key_by("k")
        right = stream.filter(lambda r: r["side"] == "R").key_by("k")
        joined = left.interval_join(right, lower, upper, lower_exclusive=exclusive[0], upper_exclusive=exclusive[1])
        joined.sink(out := CollectSink())
        joined.late().sink(late_out := CollectSink())
        flow.run(batch_size=size)
        assert sorted(r["id"] for r in late_out.results) == sorted(r["id"] for r in late)
        got = sorted((lrec["id"], rrec["id"]) for lrec, rrec in out.results)
        assert got == expected, f"batch size {size}"
        assert flow.metrics()["interval_join_1"]["late_records"] == len(late)
        assert flow.metrics()["interval_join_1"]["state"] == 0, "end of input purges every buffered row"


@SETTINGS
@given(records=streams(), delay=st.integers(0, 200), size=st.integers(1, 300))
def test_union_of_split_stream_equals_the_whole_stream(records, delay, size):
    contents, late = model.windows(records, delay, model.tumbling(size), 0, lambda r: r["ts"], lambda r: r["k"])
    for batch_size in batch_sizes(records):
        flow = Dataflow("union")
        stream = flow.source(CollectionSource(records), timestamp="ts", watermark=BoundedOutOfOrderness(delay))
        left = stream.filter(lambda r: r["side"] == "L")
        right = stream.filter(lambda r: r["side"] == "R")
        results = left.union(right).key_by("k").window(Tumbling(size)).aggregate(**AGGS)
        results.sink(out := CollectSink())
        results.late().sink(late_out := CollectSink())
        flow.run(batch_size=batch_size)
        check_aggregates(out.results, contents, 0)
        assert sorted(r["id"] for r in late_out.results) == sorted(r["id"] for r in late)


def test_join_pair_timestamp_is_the_later_of_the_two():
    records = [{"ts": 100, "k": "a", "side": "L"}, {"ts": 130, "k": "a", "side": "R"}, {"ts": 90, "k": "a", "side": "R"}]
    flow = Dataflow("pair-time")
    stream = flow.source(CollectionSource(records), timestamp="ts", watermark=BoundedOutOfOrderness(100))
    joined = stream.filter(lambda r: r["side"] == "L").key_by("k").interval_join(
        stream.filter(lambda r: r["side"] == "R").key_by("k"), -20, 50, combine=lambda l, r: (l["ts"], r["ts"])
    )
    # Window the pairs by their own time: a pair's timestamp is max(left.ts, right.ts).
    counted = joined.key_by(lambda pair: "all").window(Tumbling(10)).reduce(lambda acc, p: acc + [p], [])
    counted.sink(out := CollectSink())
    flow.run()
    assert [(r["start"], r["ids"] if "ids" in r else r["value"]) for r in out.results] == [
        (100, [(100, 90)]),
        (130, [(100, 130)]),
    ]


@SETTINGS
@given(records=streams(), delay=st.integers(0, 200))
def test_window_results_can_be_windowed_again(records, delay):
    """Window results carry event time ``end - 1``, so rolling 100 ms counts up into 500 ms windows, plus
    the records late for their 100 ms window counted in 500 ms windows, equals counting directly."""
    flow = Dataflow("rollup")
    stream = flow.source(CollectionSource(records, batch_size=7), timestamp="ts", watermark=BoundedOutOfOrderness(delay))
    small = stream.key_by("k").window(Tumbling(100)).aggregate(n=agg.count())
    small.key_by("key").window(Tumbling(500)).aggregate(n=agg.sum("n")).sink(rolled := CollectSink())
    small.late().key_by("k").window(Tumbling(500)).aggregate(n=agg.count()).sink(late_big := CollectSink())
    direct_results = stream.key_by("k").window(Tumbling(500)).aggregate(n=agg.count())
    direct_results.sink(direct := CollectSink())
    flow.run()
    combined = defaultdict(int)
    for r in rolled.results + late_big.results:
        combined[(r["key"], r["start"])] += r["n"]
    assert dict(combined) == {(r["key"], r["start"]): r["n"] for r in direct.results}
