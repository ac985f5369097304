"""Backpressure, cancellation, failures, idle partitions, end of input, metrics and the plan."""

from __future__ import annotations

import asyncio

import pytest

from connectors.memory import CollectionSource, CollectSink
from engine import (
    BoundedOutOfOrderness,
    ConnectorError,
    Dataflow,
    FlowDefinitionError,
    Sink,
    Source,
    SourceChunk,
    Tumbling,
    agg,
)
from engine.batch import INT64_MAX


class CountingSource(CollectionSource):
    """A CollectionSource that counts the chunks it has handed out."""

    def __init__(self, records, batch_size):
        super().__init__(records, batch_size=batch_size)
        self.chunks_read = 0
        self.closed = False

    async def read(self):
        async for chunk in super().read():
            self.chunks_read += 1
            yield chunk

    async def close(self):
        self.closed = True


class SlowSink(Sink):
    """Sleeps on every write and records how far ahead the source got at that moment."""

    def __init__(self, source, delay=0.002):
        self.source = source
        self.delay = delay
        self.lead = []  # chunks read by the source minus batches written, at each write
        self.written = 0
        self.calls = []

    async def open(self):
        self.calls.append("open")

    async def write(self, batch):
        self.written += 1
        self.lead.append(self.source.chunks_read - self.written)
        await asyncio.sleep(self.delay)

    async def finish(self):
        self.calls.append("finish")

    async def abort(self):
        self.calls.append("abort")

    async def close(self):
        self.calls.append("close")


@pytest.mark.parametrize("queue_size", [1, 3])
def test_a_slow_sink_keeps_the_queued_batches_bounded(queue_size):
    records = [{"ts": i} for i in range(400)]
    source = CountingSource(records, batch_size=4)
    flow = Dataflow("backpressure")
    flow.source(source, timestamp="ts").map(lambda r: r).sink(sink := SlowSink(source))
    flow.run(queue_size=queue_size)
    assert sink.written == 100
    # At each write: at most queue_size batches queued plus one the source is blocked putting.
    assert max(sink.lead) <= queue_size + 1, sink.lead
    assert flow.metrics()["source_1"]["queued_batches_max"] <= queue_size
    assert sink.calls == ["open", "finish", "close"]


class EndlessSource(Source):
    def __init__(self):
        self.closed = False
        self.produced = 0

    async def read(self):
        while True:
            self.produced += 1
            yield SourceChunk(0, records=[{"ts": self.produced}])
            await asyncio.sleep(0)

    async def close(self):
        self.closed = True


async def test_cancelling_run_async_stops_sources_aborts_sinks_and_closes_connectors():
    source = EndlessSource()
    flow = Dataflow("cancel")
    flow.source(source, timestamp="ts").sink(sink := SlowSink(source=type("S", (), {"chunks_read": 0})(), delay=0))
    task = asyncio.create_task(flow.run_async())
    while sink.written < 20:
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert source.closed
    assert sink.calls == ["open", "abort", "close"], "nothing is finished (flushed) after a cancel"
    produced = source.produced
    await asyncio.sleep(0.01)
    assert source.produced == produced, "the source task stopped"


class FailingSink(Sink):
    async def write(self, batch):
        raise OSError("disk full")


def test_a_failing_sink_fails_the_job_and_aborts_the_others():
    flow = Dataflow("sink-fails")
    stream = flow.source(CountingSource([{"ts": i} for i in range(10)], batch_size=2), timestamp="ts")
    stream.sink(FailingSink(), name="bad_sink")
    source = CountingSource([], batch_size=1)
    stream.sink(other := SlowSink(source, delay=0))
    with pytest.raises(ConnectorError, match=r"sink 'bad_sink' failed: OSError: disk full"):
        flow.run()
    assert other.calls[-2:] == ["abort", "close"]


class FailingSource(Source):
    async def read(self):
        yield SourceChunk(0, records=[{"ts": 1}])
        raise ConnectionError("broker went away")


def test_a_failing_source_fails_the_job():
    flow = Dataflow("source-fails")
    flow.source(FailingSource(), timestamp="ts", name="feed").sink(CollectSink())
    with pytest.raises(ConnectorError, match=r"source 'feed' failed: ConnectionError: broker went away"):
        flow.run()


class SilentAfter(Source):
    """Yields its records, then stays silent forever (an unbounded source with nothing new)."""

    def __init__(self, records):
        self.records = records

    async def read(self):
        yield SourceChunk(0, records=self.records)
        await asyncio.Event().wait()


class Trickle(Source):
    """Yields one record at a time, with a pause between them."""

    def __init__(self, records, pause):
        self.records = records
        self.pause = pause

    async def read(self):
        for record in self.records:
            yield SourceChunk(0, records=[record])
            await asyncio.sleep(self.pause)
        await asyncio.Event().wait()


async def _windows_fired(idle_timeout):
    """Run until the busy source has delivered everything (and, with idleness, two windows fired)."""
    flow = Dataflow("idle")
    silent = flow.source(SilentAfter([{"ts": 0, "k": "a"}]), timestamp="ts",
                         watermark=BoundedOutOfOrderness(0, idle_timeout=idle_timeout))
    busy = flow.source(Trickle([{"ts": t, "k": "a"} for t in range(0, 3000, 100)], 0.002), timestamp="ts",
                       watermark=BoundedOutOfOrderness(0, idle_timeout=idle_timeout), name="busy")
    silent.union(busy).key_by("k").window(Tumbling(1000)).aggregate(n=agg.count()).sink(out := CollectSink())
    task = asyncio.create_task(flow.run_async())
    for _ in range(10_000):  # bounded wait, no timing assumption
        await asyncio.sleep(0.005)
        if idle_timeout is None:
            # every record (30 busy + 1 silent) has reached the window: whatever could fire has fired
            # (waiting a fixed time instead could end before then on a slow machine, and pass vacuously)
            if flow.metrics().get("window_1", {}).get("records_in", 0) == 31:
                break
        elif flow.metrics().get("busy", {}).get("records_in", 0) == 30 and len(out.results) >= 2:
            break
    else:
        raise AssertionError(f"the flow did not get there in time: {flow.metrics()}")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return out.results


async def test_an_idle_partition_stops_holding_the_watermark_back():
    assert await _windows_fired(idle_timeout=None) == [], "the silent source holds the union's watermark at 0"
    fired = await _windows_fired(idle_timeout=20)
    assert fired[:2] == [{"key": "a", "start": 0, "end": 1000, "n": 11}, {"key": "a", "start": 1000, "end": 2000, "n": 10}]


def test_end_of_input_fires_every_window_and_reports_metrics():
    records = [{"ts": t, "k": (t // 250) % 2, "v": 1.5} for t in range(0, 5000, 250)] + [{"ts": 100, "k": 0, "v": 9.0}]
    flow = Dataflow("metrics")
    results = (flow.source(CollectionSource(records, batch_size=3), timestamp="ts", watermark=BoundedOutOfOrderness(10))
               .key_by("k").window(Tumbling(1000), name="per_key").aggregate(n=agg.count(), total=agg.sum("v")))
    results.sink(out := CollectSink())
    flow.run()
    assert [(r["key"], r["start"], r["n"]) for r in out.results][-2:] == [(0, 4000, 2), (1, 4000, 2)]
    assert len(out.results) == 10
    m = flow.metrics()
    assert m["source_1"]["records_in"] == 21 and m["source_1"]["batches"] == 7
    assert m["per_key"]["records_in"] == 21 and m["per_key"]["records_out"] == 10
    assert m["per_key"]["late_records"] == 1  # ts=100 arrives after the watermark passed 999
    assert m["per_key"]["watermark"] == INT64_MAX and m["per_key"]["state"] == 0
    assert m["sink_1"]["records_in"] == 10


def test_describe_shows_fused_chains_and_side_outputs():
    flow = Dataflow("plan")
    stream = flow.source(CollectionSource([]), timestamp="ts", watermark=BoundedOutOfOrderness(5000), name="clicks")
    per_user = stream.filter(lambda r: True).key_by("user").window(Tumbling(60_000), allowed_lateness=10).aggregate(
        count=agg.count(), total=agg.sum("amount")
    )
    per_user.sink(CollectSink(), name="out")
    per_user.late().sink(CollectSink(), name="late_out")
    stream.dead_letters().sink(CollectSink(), name="bad")
    text = flow.describe()
    assert "chain 1:\n  source 'clicks': CollectionSource(0 records, batch_size=1024), timestamp='ts'" in text
    assert "  window 'window_1': Tumbling(60000ms), allowed_lateness=10ms, aggregate count=count(), total=sum('amount')" in text
    assert "late records -> chain" in text
    assert "dead letters: clicks -> dead_letters_1" in text


class RecordingCheckpointer:
    """Takes a 'checkpoint' at every batch boundary: source positions and operator snapshots."""

    def __init__(self):
        self.taken = []
        self.restored = False

    async def restore(self, execution):
        self.restored = True

    async def maybe_checkpoint(self, execution):
        sink = execution.nodes["sink_1"].sink
        self.taken.append((execution.source_positions()["source_1"][0], len(sink.results)))
        execution.snapshot_operators()


def test_checkpoint_positions_trail_the_queue_and_match_what_was_processed():
    records = [{"ts": t} for t in range(50)]
    flow = Dataflow("checkpoints")
    flow.source(CollectionSource(records, batch_size=4), timestamp="ts").map(lambda r: r).sink(CollectSink())
    checkpointer = RecordingCheckpointer()
    flow.run(queue_size=3, checkpointer=checkpointer)
    assert checkpointer.restored
    # At every boundary the position equals the records that reached the sink: nothing read ahead into
    # the queue is claimed as done.
    assert all(position == written for position, written in checkpointer.taken), checkpointer.taken
    assert checkpointer.taken[-1] == (50, 50)


class Partitioned(Source):
    """Two partitions announced at run time; partition 1 only sends heartbeats, then is revoked."""

    async def read(self):
        yield SourceChunk(1, position=0)  # heartbeat: partition 1 exists but has no data yet
        yield SourceChunk(0, records=[{"ts": 100, "k": "a"}, {"ts": 2500, "k": "a"}], position=2)
        yield SourceChunk(0, records=[{"ts": 3000, "k": "a"}], position=3)
        yield SourceChunk(0, records=[{"ts": 3100, "k": "a"}], position=4, revoked=[1])
        yield SourceChunk(0, records=[{"ts": 3200, "k": "a"}], position=5)


def test_partitions_appear_hold_the_watermark_back_and_are_revoked():
    flow = Dataflow("partitions")
    results = flow.source(Partitioned(), timestamp="ts").key_by("k").window(Tumbling(1000), name="w").aggregate(n=agg.count())
    results.sink(out := CollectSink())
    watermarks = []

    class Watch:
        async def restore(self, execution):
            pass

        async def maybe_checkpoint(self, execution):
            watermarks.append(execution.metrics["w"].watermark)

        async def finish(self, execution):
            watermarks.append("finish")

    flow.run(checkpointer=Watch())
    # The empty partition 1 holds the source at INT64_MIN until it is revoked; then partition 0 rules.
    # (the revocation applies before the chunk that carries it)
    assert watermarks == [-(2**63)] * 3 + [3100 - 1, 3200 - 1, INT64_MAX, "finish"]
    assert out.results == [{"key": "a", "start": 0, "end": 1000, "n": 1}, {"key": "a", "start": 2000, "end": 3000, "n": 1},
                           {"key": "a", "start": 3000, "end": 4000, "n": 3}]


class RequestingCheckpointer:
    """Answers checkpoint requests at the next batch boundary (the coordinator's contract)."""

    def __init__(self):
        self.pending = []
        self.taken = 0

    async def restore(self, execution):
        pass

    def request(self):
        future = asyncio.get_running_loop().create_future()
        self.pending.append(future)
        return future

    async def maybe_checkpoint(self, execution):
        if self.pending:
            self.taken += 1
            for future in self.pending:
                future.set_result(self.taken)
            self.pending = []


async def test_checkpoint_requests_reach_the_running_flow_and_fail_clearly_otherwise():
    from engine.errors import CheckpointError

    flow = Dataflow("requests")
    flow.source(EndlessSource(), timestamp="ts").sink(CollectSink())
    with pytest.raises(CheckpointError, match="is not running"):
        await flow.checkpoint()
    checkpointer = RequestingCheckpointer()
    task = asyncio.create_task(flow.run_async(checkpointer=checkpointer))
    await asyncio.sleep(0.01)
    assert await flow.checkpoint() == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(CheckpointError, match="is not running"):
        await flow.savepoint("somewhere")

    plain = Dataflow("no-checkpoints")
    plain.source(EndlessSource(), timestamp="ts").sink(CollectSink())
    task = asyncio.create_task(plain.run_async())
    await asyncio.sleep(0.01)
    with pytest.raises(CheckpointError, match=r"runs without checkpoints; start it with run_async\(checkpoint_dir"):
        await plain.checkpoint()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_checkpoint_options_need_a_directory():
    flow = Dataflow("options")
    flow.source(CollectionSource([]), timestamp="ts").sink(CollectSink())
    with pytest.raises(FlowDefinitionError, match="need checkpoint_dir="):
        flow.run(fresh=True)
