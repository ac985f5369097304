from __future__ import annotations

import dataclasses

import msgspec
import numpy as np
import pytest

from connectors.memory import ArraySink, ArraySource, CollectionSource, CollectSink, PrintSink
from engine import Dataflow, FlowDefinitionError, Tumbling, agg


class Click(msgspec.Struct):
    ts: int
    user: str


@dataclasses.dataclass
class View:
    ts: int
    user: str


class Plain:
    def __init__(self, ts, user):
        self.ts = ts
        self.user = user


@pytest.mark.parametrize("make", [dict, Click, View, Plain])
def test_collection_source_reads_dicts_structs_and_objects(make):
    records = [make(ts=t, user=u) for t, u in [(1, "a"), (2, "b"), (5, "a")]]
    flow = Dataflow("kinds")
    flow.source(CollectionSource(records, batch_size=2), timestamp="ts").key_by("user").window(Tumbling(10)).aggregate(
        n=agg.count()
    ).sink(out := CollectSink())
    flow.run()
    assert out.results == [{"key": "a", "start": 0, "end": 10, "n": 2}, {"key": "b", "start": 0, "end": 10, "n": 1}]


def test_collection_source_accepts_a_generator_once_and_a_list_every_run():
    flow = Dataflow("iterables")
    flow.source(CollectionSource(({"ts": t} for t in range(5)), batch_size=2), timestamp="ts").sink(out := CollectSink())
    flow.run()
    assert [r["ts"] for r in out.results] == [0, 1, 2, 3, 4]
    flow.run()
    assert out.results == [], "a generator is consumed once; CollectSink starts empty each run"

    flow = Dataflow("list")
    flow.source(CollectionSource([{"ts": 1}, {"ts": 2}]), timestamp="ts").sink(out := CollectSink())
    flow.run()
    flow.run()
    assert out.results == [{"ts": 1}, {"ts": 2}]


def test_sources_report_and_seek_positions():
    source = CollectionSource([{"ts": t} for t in range(10)], batch_size=4)
    source.seek({0: 6})
    flow = Dataflow("seek")
    flow.source(source, timestamp="ts").sink(out := CollectSink())
    flow.run()
    assert [r["ts"] for r in out.results] == [6, 7, 8, 9]
    assert source.position() == {0: 10}

    array = ArraySource({"ts": np.arange(10)}, batch_size=3)
    array.seek({0: 8})
    flow = Dataflow("seek-array")
    flow.source(array, timestamp="ts").sink(sink := ArraySink())
    flow.run()
    assert sink.columns()["ts"].tolist() == [8, 9]


def test_array_source_validates_its_columns():
    with pytest.raises(FlowDefinitionError, match="equal lengths"):
        ArraySource({"ts": np.arange(3), "v": np.arange(4)})
    with pytest.raises(FlowDefinitionError, match="1-D numpy array"):
        ArraySource({"ts": [1, 2, 3]})
    with pytest.raises(FlowDefinitionError, match="batch_size must be a positive int"):
        ArraySource({"ts": np.arange(3)}, batch_size=0)


def test_array_sink_turns_records_into_columns():
    flow = Dataflow("records-to-columns")
    flow.source(CollectionSource([{"ts": 1, "v": 2.5}, {"ts": 2, "v": 3.5}]), timestamp="ts").map(
        lambda r: {"ts": r["ts"], "double": r["v"] * 2}
    ).sink(sink := ArraySink())
    flow.run()
    cols = sink.columns()
    assert cols["double"].tolist() == [5.0, 7.0] and cols["ts"].dtype == np.int64


def test_print_sink_prints_and_counts_what_it_leaves_out(capsys):
    flow = Dataflow("print")
    flow.source(CollectionSource([{"ts": t} for t in range(5)]), timestamp="ts").sink(PrintSink(prefix="> ", limit=2))
    flow.run()
    assert capsys.readouterr().out == "> {'ts': 0}\n> {'ts': 1}\n> ... 3 more records not shown\n"
