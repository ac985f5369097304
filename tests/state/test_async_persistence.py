"""Checkpoints persisted in the background: the job goes on while a checkpoint is written, sinks commit
and sources commit offsets only after the file is renamed (in order), at most one is in flight, the
final one is waited for, and a failed write surfaces (Flink's tolerable-failed-checkpoints)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from connectors.memory import CollectionSource
from engine import BoundedOutOfOrderness, Dataflow, Tumbling, agg
from engine.errors import CheckpointError, ConnectorError
from engine.io import Sink
from engine.state.coordinator import CheckpointCoordinator
from engine.state.storage import LocalCheckpointStorage
from tests.waiting import wait_until

N_RECORDS = 3_000


def records():
    return [{"user": f"u{i % 7}", "ts": i * 10, "amount": float(i % 13)} for i in range(N_RECORDS)]


class RecordingSink(Sink):
    """Collects results and records every lifecycle call, with what was true at that moment."""

    def __init__(self, storage_dir, coordinator=None) -> None:
        self.storage_dir = storage_dir
        self.coordinator = coordinator
        self.results: list = []
        self.events: list[tuple] = []
        self.writes_while_in_flight = 0

    async def write(self, batch) -> None:
        self.results.extend(batch.records)
        if self.coordinator is not None and self.coordinator.in_flight is not None:
            self.writes_while_in_flight += 1

    async def pre_commit(self, checkpoint_id: int) -> None:
        self.events.append(("pre_commit", checkpoint_id, len(self.results)))

    async def commit(self, checkpoint_id: int) -> None:
        renamed = (self.storage_dir / f"chk-{checkpoint_id:012d}.ckpt").exists()
        self.events.append(("commit", checkpoint_id, renamed))

    async def finish(self) -> None:
        self.events.append(("finish",))


#: With a coordinator, a paced source lets the checkpoint being written finish every this many chunks.
SETTLE_EVERY = 10


class PacedSource(CollectionSource):
    """A collection source that takes ``pause`` seconds per chunk, as a live input would.

    With ``coordinator`` (whose storage is a `SlowStorage`), every `SETTLE_EVERY`-th chunk also waits until
    the checkpoint being written, if any, is written. The next batch boundary then completes it and starts
    another, so at least one checkpoint starts per `SETTLE_EVERY` chunks however slow the machine's fsync:
    the input cannot end before the checkpoints a test counts were taken. (A write that is quick, as
    usual, is never waited for.)"""

    def __init__(self, *args, pause: float = 0.002, coordinator: CheckpointCoordinator | None = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pause = pause
        self.coordinator = coordinator

    async def read(self):
        count = 0
        async for chunk in super().read():
            await asyncio.sleep(self.pause)
            count += 1
            if self.coordinator is not None and count % SETTLE_EVERY == 0:
                await _written(self.coordinator)
            yield chunk


async def _written(coordinator: CheckpointCoordinator) -> None:
    """Wait until the checkpoint in flight, if any, is written (or its write failed)."""
    await wait_until(lambda: coordinator.in_flight is None or coordinator.in_flight in coordinator.storage.spans,
                     interval=0.001)


class PositionsSource(PacedSource):
    """A paced source that records which positions it was told are durable (like Kafka commits)."""

    def __init__(self, *args, storage_dir, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.storage_dir = storage_dir
        self.notified: list[tuple[dict, list[int]]] = []

    async def notify_checkpoint_complete(self, positions):
        latest = LocalCheckpointStorage(self.storage_dir).latest()  # durable by now
        (durable,) = latest.state["sources"].values()
        self.notified.append((latest.checkpoint_id, dict(positions), durable))
        return None


class SlowStorage(LocalCheckpointStorage):
    """Checkpoint storage whose writes take ``delay`` seconds; records their overlap and timing."""

    def __init__(self, directory, delay: float, fail: set[int] = frozenset(), keep: int = 3) -> None:
        super().__init__(directory, keep=keep)
        self.delay = delay
        self.fail = set(fail)
        self.active = 0
        self.max_active = 0
        self.spans: dict[int, tuple[float, float]] = {}
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def write_body(self, checkpoint_id, body_parts):
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        started = time.monotonic()
        self.threads.add(threading.current_thread().name)
        try:
            time.sleep(self.delay)
            if checkpoint_id in self.fail:
                raise OSError(28, "No space left on device")
            return super().write_body(checkpoint_id, body_parts)
        finally:
            self.spans[checkpoint_id] = (started, time.monotonic())
            with self._lock:
                self.active -= 1


def build(sink: Sink, source=None) -> Dataflow:
    flow = Dataflow("async-ckpt")
    (
        flow.source(source if source is not None else PacedSource(records(), batch_size=20),
                    timestamp="ts", watermark=BoundedOutOfOrderness(50))
        .key_by("user")
        .window(Tumbling(100))
        .aggregate(n=agg.count(), total=agg.sum("amount"))
        .sink(sink)
    )
    return flow


def settling(coordinator: CheckpointCoordinator) -> PacedSource:
    """The test input, paced, letting checkpoint writes finish (see `PacedSource`)."""
    return PacedSource(records(), batch_size=20, coordinator=coordinator)


def coordinator_with(tmp_path, delay: float, *, interval: float = 0.001, fail=frozenset(), **options):
    coordinator = CheckpointCoordinator(tmp_path / "ckpt", interval=interval, **options)
    coordinator.storage = SlowStorage(tmp_path / "ckpt", delay, fail)
    return coordinator


@pytest.fixture
def expected():
    sink = RecordingSink(None)
    build(sink, CollectionSource(records(), batch_size=20)).run()
    return sorted((r["key"], r["start"], r["n"], r["total"]) for r in sink.results)


def rows(sink):
    return sorted((r["key"], r["start"], r["n"], r["total"]) for r in sink.results)


def test_the_job_goes_on_while_a_checkpoint_is_written_and_commits_follow_the_rename(tmp_path, expected):
    coordinator = coordinator_with(tmp_path, delay=0.02)
    sink = RecordingSink(tmp_path / "ckpt", coordinator)
    source = PositionsSource(records(), batch_size=20, storage_dir=tmp_path / "ckpt", coordinator=coordinator)
    build(sink, source).run(checkpointer=coordinator)

    assert rows(sink) == expected
    storage = coordinator.storage
    assert sink.writes_while_in_flight > 0, "batches were written while a checkpoint was being persisted"
    assert storage.threads and all(name.startswith("engine-checkpoint") for name in storage.threads)
    commits = [e for e in sink.events if e[0] == "commit"]
    pre_commits = [e[1] for e in sink.events if e[0] == "pre_commit"]
    assert len(commits) >= 3
    # every commit comes after its checkpoint file was renamed into place, in checkpoint order, once
    assert all(renamed for _, _, renamed in commits), commits
    assert [c[1] for c in commits] == sorted({c[1] for c in commits})
    assert [c[1] for c in commits] == coordinator.completed == pre_commits
    # sources are told only about durable checkpoints: the newest file holds the positions notified
    assert [n[0] for n in source.notified] == coordinator.completed
    assert all(positions == durable for _, positions, durable in source.notified)
    assert source.notified[-1][1] == {0: N_RECORDS}
    # the final checkpoint was waited for: durable, committed before the sink finished
    assert sink.events[-1] == ("finish",)
    assert sink.events[-2] == ("commit", coordinator.completed[-1], True)
    assert coordinator.in_flight is None
    latest = LocalCheckpointStorage(tmp_path / "ckpt").latest()
    assert latest.checkpoint_id == coordinator.completed[-1]
    assert latest.state["sources"] == {next(iter(latest.state["sources"])): {0: N_RECORDS}}


def test_at_most_one_checkpoint_is_in_flight_and_a_due_one_is_delayed_not_skipped(tmp_path, expected):
    coordinator = coordinator_with(tmp_path, delay=0.03)
    sink = RecordingSink(tmp_path / "ckpt", coordinator)
    build(sink, settling(coordinator)).run(checkpointer=coordinator)

    assert rows(sink) == expected
    storage = coordinator.storage
    assert storage.max_active == 1
    ids = sorted(storage.spans)
    assert len(ids) >= 3
    assert ids == list(range(ids[0], ids[0] + len(ids))), "no checkpoint id was skipped"
    for earlier, later in zip(ids, ids[1:]):
        assert storage.spans[later][0] >= storage.spans[earlier][1], (earlier, later)
    # with the interval always due, each checkpoint starts at the first boundary after the previous one
    # completed, so nearly every batch boundary during the run had one in flight
    assert sink.writes_while_in_flight > len(ids)


def test_a_failed_background_write_fails_the_job_and_the_previous_checkpoint_stays(tmp_path):
    coordinator = coordinator_with(tmp_path, delay=0.005, fail={3})
    sink = RecordingSink(tmp_path / "ckpt", coordinator)
    with pytest.raises(CheckpointError, match=r"checkpoint 3 could not be written to .*No space left on device"):
        build(sink, settling(coordinator)).run(checkpointer=coordinator)
    assert coordinator.completed == [1, 2]
    assert coordinator.failed == [3]
    assert [e[1] for e in sink.events if e[0] == "commit"] == [1, 2]  # never the failed one
    assert ("finish",) not in sink.events
    assert LocalCheckpointStorage(tmp_path / "ckpt").latest().checkpoint_id == 2
    assert not list((tmp_path / "ckpt").glob(".*.tmp"))


def test_tolerable_failed_checkpoints_lets_the_job_go_on_and_counts_them(tmp_path, expected, caplog):
    coordinator = coordinator_with(tmp_path, delay=0.005, fail={2, 4, 5}, tolerable_failed_checkpoints=2)
    sink = RecordingSink(tmp_path / "ckpt", coordinator)
    with caplog.at_level("ERROR", logger="engine.state.coordinator"):
        build(sink, settling(coordinator)).run(checkpointer=coordinator)
    assert rows(sink) == expected
    assert coordinator.failed == [2, 4, 5]
    assert 3 in coordinator.completed and 6 in coordinator.completed
    assert [e[1] for e in sink.events if e[0] == "commit"] == coordinator.completed
    assert "checkpoint 4 could not be written" in caplog.text and "2 failed in a row, 2 tolerated" in caplog.text


def test_more_failures_in_a_row_than_tolerated_fail_the_job(tmp_path):
    coordinator = coordinator_with(tmp_path, delay=0.005, fail={2, 3}, tolerable_failed_checkpoints=1)
    with pytest.raises(CheckpointError, match="2 checkpoint\\(s\\) failed in a row, more than tolerable_failed_checkpoints=1"):
        build(RecordingSink(tmp_path / "ckpt", coordinator), settling(coordinator)).run(checkpointer=coordinator)
    assert coordinator.failed == [2, 3]
    assert coordinator.completed == [1]


def test_a_failed_final_checkpoint_is_taken_again_before_the_sinks_finish(tmp_path, expected, caplog):
    # no periodic checkpoints: the final one (1) is the only one, and its write fails within the tolerance
    coordinator = coordinator_with(tmp_path, delay=0.005, interval=None, fail={1}, tolerable_failed_checkpoints=1)
    sink = RecordingSink(tmp_path / "ckpt", coordinator)
    with caplog.at_level("ERROR", logger="engine.state.coordinator"):
        build(sink, settling(coordinator)).run(checkpointer=coordinator)
    assert rows(sink) == expected
    assert coordinator.failed == [1] and coordinator.completed == [2]
    # the run ended on a durable checkpoint, committed before the sink finished
    assert sink.events[-3:] == [("pre_commit", 2, len(sink.results)), ("commit", 2, True), ("finish",)]
    assert LocalCheckpointStorage(tmp_path / "ckpt").latest().state["sources"] == {
        next(iter(coordinator.last_checkpoint.state["sources"])): {0: N_RECORDS}}
    assert "checkpoint 1 could not be written" in caplog.text


def test_a_final_checkpoint_failing_more_than_tolerated_fails_the_job_before_the_sinks_finish(tmp_path):
    coordinator = coordinator_with(tmp_path, delay=0.005, interval=None, fail={1, 2}, tolerable_failed_checkpoints=1)
    sink = RecordingSink(tmp_path / "ckpt", coordinator)
    with pytest.raises(CheckpointError, match="checkpoint 2 could not be written .*2 checkpoint\\(s\\) failed in a row"):
        build(sink, settling(coordinator)).run(checkpointer=coordinator)
    assert coordinator.failed == [1, 2] and coordinator.completed == []
    assert ("finish",) not in sink.events and not [e for e in sink.events if e[0] == "commit"]


def test_tolerable_failed_checkpoints_is_validated(tmp_path):
    with pytest.raises(ValueError, match="tolerable_failed_checkpoints must be an int >= 0, got -1"):
        CheckpointCoordinator(tmp_path, tolerable_failed_checkpoints=-1)


class FailingSource(PacedSource):
    async def read(self):
        count = 0
        async for chunk in super().read():
            if count == 40:
                raise OSError("input went away")
            count += 1
            yield chunk


def test_a_run_that_fails_while_a_checkpoint_is_written_waits_for_the_write(tmp_path):
    coordinator = coordinator_with(tmp_path, delay=0.2, interval=0.001)
    sink = RecordingSink(tmp_path / "ckpt", coordinator)
    with pytest.raises(ConnectorError, match="input went away"):
        build(sink, FailingSource(records(), batch_size=20)).run(checkpointer=coordinator)
    # no thread is left writing into the directory once run() has returned
    assert coordinator.storage.active == 0
    assert coordinator.in_flight is None
    written = LocalCheckpointStorage(tmp_path / "ckpt").ids()
    assert written and max(written) == max(coordinator.storage.spans)
    # it became durable, so its completion was still delivered (the sink committed it)
    assert coordinator.completed[-1] == max(written)
    assert sink.events[-1] == ("commit", max(written), True)


class BarrierSink(RecordingSink):
    commit_requires_barrier = True  # e.g. a Kafka transaction: commit covers everything written so far


def test_a_sink_that_needs_a_barrier_makes_every_checkpoint_complete_before_the_next_batch(tmp_path, expected):
    coordinator = coordinator_with(tmp_path, delay=0.01)
    sink = BarrierSink(tmp_path / "ckpt", coordinator)
    build(sink).run(checkpointer=coordinator)
    assert rows(sink) == expected
    assert sink.writes_while_in_flight == 0
    pre = [(e[1], e[2]) for e in sink.events if e[0] == "pre_commit"]
    commits = [e[1] for e in sink.events if e[0] == "commit"]
    assert commits == [i for i, _ in pre]
    # nothing was written between a pre-commit and its commit
    order = [e for e in sink.events if e[0] in ("pre_commit", "commit")]
    assert all(a[0] == "pre_commit" and b == ("commit", a[1], True) for a, b in zip(order[::2], order[1::2]))


async def test_a_requested_checkpoint_resolves_only_once_durable(tmp_path):
    coordinator = coordinator_with(tmp_path, delay=0.05, interval=None)
    sink = RecordingSink(tmp_path / "ckpt", coordinator)
    flow = build(sink, PacedSource(records(), batch_size=20))
    run = asyncio.create_task(flow.run_async(checkpointer=coordinator))
    while not sink.results:
        await asyncio.sleep(0.001)
    checkpoint_id = await flow.checkpoint()
    assert (tmp_path / "ckpt" / f"chk-{checkpoint_id:012d}.ckpt").exists()
    assert ("commit", checkpoint_id, True) in sink.events
    await run


def test_run_passes_tolerable_failed_checkpoints_and_needs_a_checkpoint_dir(tmp_path):
    from engine.errors import FlowDefinitionError

    flow = build(RecordingSink(tmp_path / "ckpt"), CollectionSource(records(), batch_size=500))
    flow.run(checkpoint_dir=tmp_path / "ckpt", tolerable_failed_checkpoints=3)
    assert flow._last_run.checkpointer.tolerable_failed_checkpoints == 3
    with pytest.raises(FlowDefinitionError, match="tolerable_failed_checkpoints= need checkpoint_dir="):
        flow.run(tolerable_failed_checkpoints=1)


class RotationFailingStorage(LocalCheckpointStorage):
    def _rotate(self) -> None:
        raise PermissionError(13, "Permission denied")


def test_a_rotation_failure_after_the_rename_does_not_fail_a_durable_checkpoint(tmp_path, expected, caplog):
    coordinator = CheckpointCoordinator(tmp_path / "ckpt", interval=0.001)
    coordinator.storage = RotationFailingStorage(tmp_path / "ckpt")
    sink = RecordingSink(tmp_path / "ckpt", coordinator)
    with caplog.at_level("WARNING", logger="engine.state.storage"):
        build(sink).run(checkpointer=coordinator)
    assert rows(sink) == expected
    assert coordinator.failed == [] and len(coordinator.completed) >= 2
    assert [e[1] for e in sink.events if e[0] == "commit"] == coordinator.completed
    assert "rotating old checkpoints out of" in caplog.text and "Permission denied" in caplog.text


async def test_a_failed_savepoint_fails_its_request_not_the_checkpoint(tmp_path, expected):
    coordinator = coordinator_with(tmp_path, delay=0.01, interval=None)
    sink = RecordingSink(tmp_path / "ckpt", coordinator)
    flow = build(sink, PacedSource(records(), batch_size=20))
    run = asyncio.create_task(flow.run_async(checkpointer=coordinator))
    while not sink.results:
        await asyncio.sleep(0.001)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the savepoint's directory should be")
    with pytest.raises(CheckpointError, match=r"savepoint .*not-a-directory.* could not be written"):
        await flow.savepoint(blocker / "sp.ckpt")
    good = await flow.savepoint(tmp_path / "savepoints" / "sp.ckpt")
    await run
    assert rows(sink) == expected
    assert coordinator.failed == []
    assert len(coordinator.completed) >= 2  # the checkpoints behind both savepoints are durable
    assert good == tmp_path / "savepoints" / "sp.ckpt" and good.exists()
