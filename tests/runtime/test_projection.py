"""Projection pushdown: a source learns which fields the job reads only when nothing sees whole records."""

from __future__ import annotations

import pytest

from connectors.memory import CollectionSource, CollectSink
from engine import BoundedOutOfOrderness, Dataflow, Session, Tumbling, agg
from engine.runtime.plan import compile_flow
from engine.runtime.projection import source_projection

WM = BoundedOutOfOrderness(10)


def projection_of(build, timestamp="ts"):
    flow = Dataflow("projection")
    src = flow.source(CollectionSource([]), timestamp=timestamp, watermark=WM)
    build(src)
    plan = compile_flow(flow)
    (source_step,) = [name for name, step in plan.steps.items() if step.kind == "source"]
    return source_projection(plan, source_step)


def test_key_and_aggregated_fields_are_all_a_window_job_reads():
    got = projection_of(lambda s: s.key_by("user").window(Tumbling(10)).aggregate(
        n=agg.count(), total=agg.sum("amount"), top=agg.max("price")).sink(CollectSink()))
    assert got == {"ts": "int", "user": "key", "amount": "number", "price": "number"}


def test_count_only_reads_the_key_and_the_timestamp_field():
    got = projection_of(lambda s: s.key_by("user").window(Session(5)).aggregate(n=agg.count()).sink(CollectSink()))
    assert got == {"ts": "int", "user": "key"}


def test_a_field_read_in_two_roles_must_be_an_int():
    got = projection_of(lambda s: s.key_by("user").window(Tumbling(10)).aggregate(total=agg.sum("user")).sink(CollectSink()))
    assert got == {"ts": "int", "user": "int"}


def test_two_keyed_branches_read_the_union_of_their_fields():
    def build(s):
        s.key_by("user").window(Tumbling(10)).aggregate(total=agg.sum("amount")).sink(CollectSink())
        s.key_by("page").window(Tumbling(10)).aggregate(n=agg.count()).sink(CollectSink())

    assert projection_of(build) == {"ts": "int", "user": "key", "amount": "number", "page": "key"}


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda s: s.sink(CollectSink()), id="sink of records"),
        pytest.param(lambda s: s.map(lambda r: r).key_by("user").window(Tumbling(10)).aggregate(n=agg.count()).sink(CollectSink()), id="map"),
        pytest.param(lambda s: s.key_by("user").filter(lambda r: True).window(Tumbling(10)).aggregate(n=agg.count()).sink(CollectSink()), id="filter"),
        pytest.param(lambda s: s.key_by(lambda r: r["user"]).window(Tumbling(10)).aggregate(n=agg.count()).sink(CollectSink()), id="key callable"),
        pytest.param(lambda s: s.key_by("user").window(Tumbling(10)).aggregate(t=agg.sum(lambda r: r["a"])).sink(CollectSink()), id="aggregation callable"),
        pytest.param(lambda s: s.key_by("user").window(Tumbling(10)).reduce(lambda a, r: a + 1, 0).sink(CollectSink()), id="reduce"),
        pytest.param(lambda s: s.key_by("user").sink(CollectSink()), id="keyed records to a sink"),
        pytest.param(lambda s: _with_late_output(s), id="late output"),
    ],
)
def test_any_step_that_may_see_whole_records_rules_projection_out(build):
    assert projection_of(build) is None


def _with_late_output(s):
    windowed = s.key_by("user").window(Tumbling(10)).aggregate(n=agg.count())
    windowed.sink(CollectSink())
    windowed.late().sink(CollectSink())


def test_a_timestamp_callable_rules_projection_out():
    build = lambda s: s.key_by("user").window(Tumbling(10)).aggregate(n=agg.count()).sink(CollectSink())  # noqa: E731
    assert projection_of(build, timestamp=lambda r: r["ts"]) is None


class Recording(CollectionSource):
    def project(self, fields):
        self.projected = fields


def test_the_runtime_tells_each_source_its_projection_before_running():
    flow = Dataflow("told")
    source = Recording([{"user": "a", "ts": 1}])
    flow.source(source, timestamp="ts", watermark=WM).key_by("user").window(Tumbling(10)).aggregate(n=agg.count()).sink(out := CollectSink())
    flow.run()
    assert source.projected == {"ts": "int", "user": "key"}
    assert out.results == [{"key": "a", "start": 0, "end": 10, "n": 1}]
