from __future__ import annotations

import asyncio

import msgspec
import pytest

from connectors.files import JsonLinesSink, JsonLinesSource
from connectors.memory import CollectSink
from engine import Dataflow, JobFailedError, Source, SourceChunk, Tumbling, agg


class Click(msgspec.Struct):
    ts: int
    user: str


def test_jsonl_round_trip_with_dead_letters_for_undecodable_lines(tmp_path):
    source_path = tmp_path / "in.jsonl"
    source_path.write_bytes(
        b'{"ts": 1, "user": "a"}\n{"ts": 2, "user": "b"}\nnot json\n\n{"ts": 3, "user": "a"}\n{"ts": "x", "user": "a"}\n'
    )
    out_path = tmp_path / "out.jsonl"
    flow = Dataflow("jsonl")
    stream = flow.source(JsonLinesSource(source_path, batch_size=2, type=Click), timestamp="ts")
    stream.key_by("user").window(Tumbling(10)).aggregate(n=agg.count()).sink(JsonLinesSink(out_path))
    stream.dead_letters().sink(dead := CollectSink())
    flow.run()
    lines = [msgspec.json.decode(line) for line in out_path.read_bytes().splitlines()]
    assert lines == [{"key": "a", "start": 0, "end": 10, "n": 2}, {"key": "b", "start": 0, "end": 10, "n": 1}]
    assert [d.record for d in dead.results] == ["not json", '{"ts": "x", "user": "a"}']
    assert all(d.step == "source_1" and "undecodable input" in d.error for d in dead.results)
    assert "Expected `int`, got `str` - at `$.ts`" in dead.results[1].error
    assert sorted(tmp_path.iterdir()) == sorted([source_path, out_path]), "no temporary file is left behind"


def test_undecodable_line_without_dead_letters_fails_naming_the_source(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"ts": 1}\n{oops\n')
    flow = Dataflow("jsonl-fail")
    flow.source(JsonLinesSource(path), timestamp="ts").sink(CollectSink())
    with pytest.raises(JobFailedError, match=r"step 'source_1': undecodable input: .*record '\{oops'"):
        flow.run()


def test_jsonl_source_reports_byte_offsets_and_seeks(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"ts": 1}\n{"ts": 2}\n{"ts": 3}\n')
    source = JsonLinesSource(path, batch_size=1)
    source.seek({0: len('{"ts": 1}\n')})
    flow = Dataflow("offsets")
    flow.source(source, timestamp="ts").sink(out := CollectSink())
    flow.run()
    assert out.results == [{"ts": 2}, {"ts": 3}]
    assert source.position() == {0: path.stat().st_size}


class Endless(Source):
    async def read(self):
        t = 0
        while True:
            t += 1
            yield SourceChunk(0, records=[{"ts": t}])
            await asyncio.sleep(0)


async def test_a_cancelled_job_leaves_no_partial_jsonl_file(tmp_path):
    out_path = tmp_path / "out.jsonl"
    flow = Dataflow("cancel-jsonl")
    flow.source(Endless(), timestamp="ts").sink(JsonLinesSink(out_path))
    task = asyncio.create_task(flow.run_async())
    while flow.metrics().get("sink_1", {}).get("records_in", 0) < 10:
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list(tmp_path.iterdir()) == [], "neither the output nor a temporary file is left behind"
