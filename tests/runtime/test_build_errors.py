"""An invalid flow fails while it is being built, with a message that says what to do."""

from __future__ import annotations

import datetime

import numpy as np
import pytest

from connectors.memory import ArraySource, CollectionSource, CollectSink
from engine import BoundedOutOfOrderness, Dataflow, FlowDefinitionError, Session, Sliding, Tumbling, agg


def records_flow():
    flow = Dataflow("build")
    return flow, flow.source(CollectionSource([{"ts": 1, "k": "a", "v": 1}]), timestamp="ts")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Tumbling(0), "Tumbling size must be > 0 milliseconds, got 0"),
        (lambda: Tumbling(-5), "Tumbling size must be > 0"),
        (lambda: Sliding(1000, 0), "Sliding slide must be > 0"),
        (lambda: Sliding(0, 10), "Sliding size must be > 0"),
        (lambda: Session(0), "Session gap must be > 0"),
        (lambda: Tumbling(1.5), "must be an int number of milliseconds or a datetime.timedelta"),
        (lambda: Tumbling(100, offset=100), "-size < offset < size"),
        (lambda: Sliding(100, 10, offset=-10), "-slide < offset < slide"),
        (lambda: BoundedOutOfOrderness(-1), "must be >= 0"),
        (lambda: BoundedOutOfOrderness(1, idle_timeout=0), "idle_timeout must be >= 1"),
        (lambda: agg.sum(3), "needs a field name or a callable"),
    ],
)
def test_invalid_specs_are_refused_at_construction(make, message):
    with pytest.raises(FlowDefinitionError, match=message):
        make()


def test_durations_accept_timedelta():
    assert Tumbling(datetime.timedelta(seconds=2)).size == 2000
    assert Sliding(datetime.timedelta(minutes=1), datetime.timedelta(seconds=10)).slide == 10_000
    assert BoundedOutOfOrderness(datetime.timedelta(milliseconds=5)).delay == 5


def test_a_flow_without_a_sink_is_refused():
    flow, stream = records_flow()
    stream.map(lambda r: r)
    with pytest.raises(FlowDefinitionError, match=r"has no sink.*\.sink\(\.\.\.\)"):
        flow.run()
    with pytest.raises(FlowDefinitionError, match="has no sink"):
        flow.describe()


def test_joining_unkeyed_streams_is_refused():
    flow, stream = records_flow()
    other = flow.source(CollectionSource([]), timestamp="ts")
    with pytest.raises(FlowDefinitionError, match=r"needs keyed streams.*key_by"):
        stream.interval_join(other, -5, 5)
    with pytest.raises(FlowDefinitionError, match=r"other stream must be keyed too"):
        stream.key_by("k").interval_join(other, -5, 5)
    with pytest.raises(FlowDefinitionError, match=r"lower \(5\) must be <= upper \(-5\)"):
        stream.key_by("k").interval_join(other.key_by("k"), 5, -5)


def test_windowing_an_unkeyed_stream_says_to_key_it():
    _, stream = records_flow()
    with pytest.raises(FlowDefinitionError, match=r"needs a keyed stream; call \.key_by"):
        stream.window(Tumbling(10))


def test_fields_a_columnar_source_lacks_are_refused():
    flow = Dataflow("columns")
    source = ArraySource({"ts": np.arange(3), "user": np.arange(3), "price": np.ones(3)})
    with pytest.raises(FlowDefinitionError, match=r"timestamp field 'time' is not a field of the source.*'price', 'ts', 'user'"):
        flow.source(source, timestamp="time")
    stream = flow.source(source, timestamp="ts")
    with pytest.raises(FlowDefinitionError, match=r"key field 'account' is not a field of the stream"):
        stream.key_by("account")
    windowed = stream.key_by("user").window(Tumbling(10))
    with pytest.raises(FlowDefinitionError, match=r"field 'amount' is not a field"):
        windowed.aggregate(total=agg.sum("amount"))


def test_a_float_timestamp_column_is_refused():
    flow = Dataflow("float-ts")
    with pytest.raises(FlowDefinitionError, match=r"dtype float64, but timestamps are int milliseconds"):
        flow.source(ArraySource({"ts": np.ones(3)}), timestamp="ts")


def test_a_string_column_cannot_be_summed():
    flow = Dataflow("str-sum")
    stream = flow.source(ArraySource({"ts": np.arange(2), "k": np.arange(2), "s": np.array(["a", "b"])}), timestamp="ts")
    with pytest.raises(FlowDefinitionError, match=r"dtype <U1; aggregations need numbers"):
        stream.key_by("k").window(Tumbling(10)).aggregate(total=agg.sum("s"))


def test_step_names_are_unique_and_generated_by_default():
    flow, stream = records_flow()
    mapped = stream.map(lambda r: r, name="enrich")
    with pytest.raises(FlowDefinitionError, match=r"already has a step named 'enrich'"):
        stream.map(lambda r: r, name="enrich")
    assert mapped.name == "enrich"
    assert stream.filter(lambda r: True).name == "filter_1"
    assert stream.filter(lambda r: True).name == "filter_2"


def test_window_needs_an_aggregation_and_reserved_names_are_refused():
    flow, stream = records_flow()
    windowed = stream.key_by("k").window(Tumbling(10))
    with pytest.raises(FlowDefinitionError, match="reserved result field"):
        windowed.aggregate(start=agg.count())
    with pytest.raises(FlowDefinitionError, match="at least one named aggregation"):
        windowed.aggregate()
    windowed.late().sink(CollectSink())
    with pytest.raises(FlowDefinitionError, match=r"have no aggregation; call \.aggregate"):
        flow.validate()
    windowed.aggregate(n=agg.count()).sink(CollectSink())
    flow.validate()
    with pytest.raises(FlowDefinitionError, match="already has its aggregation"):
        windowed.aggregate(n=agg.count())


def test_bad_arguments_are_named():
    flow, stream = records_flow()
    with pytest.raises(FlowDefinitionError, match="needs a callable"):
        stream.map("not callable")
    with pytest.raises(FlowDefinitionError, match=r"needs timestamp="):
        flow.source(CollectionSource([]))
    with pytest.raises(FlowDefinitionError, match="needs an engine.io.Sink"):
        stream.sink([])
    with pytest.raises(FlowDefinitionError, match="allowed_lateness must be >= 0"):
        stream.key_by("k").window(Tumbling(10), allowed_lateness=-1)
    other = Dataflow("other").source(CollectionSource([]), timestamp="ts")
    with pytest.raises(FlowDefinitionError, match="belongs to flow 'other'"):
        stream.union(other)
    sink = CollectSink()
    stream.sink(sink)
    with pytest.raises(FlowDefinitionError, match="already used by step"):
        stream.map(lambda r: r).sink(sink)


def test_run_inside_a_running_loop_points_to_run_async():
    import asyncio

    flow, stream = records_flow()
    stream.sink(CollectSink())

    async def main():
        with pytest.raises(FlowDefinitionError, match=r"await flow.run_async\(\)"):
            flow.run()

    asyncio.run(main())


def test_a_dead_letter_stream_must_reach_a_sink():
    flow, stream = records_flow()
    stream.sink(CollectSink())
    stream.dead_letters().map(lambda d: d.error)
    with pytest.raises(FlowDefinitionError, match=r"dead-letter stream 'dead_letters_1' \(of 'source_1'\) reaches no sink"):
        flow.run()
