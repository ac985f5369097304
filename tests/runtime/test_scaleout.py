"""Keyed state per input partition moves with the partition: a worker that takes over partitions of a
crashed worker loads their state from the crashed worker's checkpoints (shared directory) at the offsets
the group committed, and the final results equal a single-worker run. Kafka-free: a fake group source."""

from __future__ import annotations

import random

import pytest

from connectors.memory import CollectSink
from engine import BoundedOutOfOrderness, Dataflow, JobFailedError, Source, SourceChunk, Tumbling, agg
from engine.state.coordinator import CheckpointCoordinator

N_PARTITIONS = 4


def partitioned_records(seed=11, per_partition=300):
    rng = random.Random(seed)
    print(f"seed={seed}")
    data = {}
    for p in range(N_PARTITIONS):
        # keys are co-partitioned: key k always lives on partition k % 4
        data[p] = [{"ts": i * 20 - rng.randint(0, 150), "k": p + N_PARTITIONS * rng.randint(0, 2), "v": rng.randint(1, 9)}
                   for i in range(per_partition)]
    return data


class GroupSource(Source):
    """Reads the assigned partitions from the group's committed offsets; commits after checkpoints."""

    def __init__(self, data, assigned, committed, batch_size=16):
        self.data, self.assigned, self.committed, self.batch_size = data, assigned, committed, batch_size
        self.pos = {}

    async def open(self, batch_size=None):
        self.pos = {p: self.committed.get(p, 0) for p in self.assigned}

    async def read(self):
        for p in self.assigned:  # announce before any data, at the offset reading starts from
            yield SourceChunk(p, position=self.pos[p])
        while any(self.pos[p] < len(self.data[p]) for p in self.assigned):
            for p in self.assigned:
                start = self.pos[p]
                if start < len(self.data[p]):
                    self.pos[p] = min(start + self.batch_size, len(self.data[p]))
                    yield SourceChunk(p, records=self.data[p][start:self.pos[p]], position=self.pos[p])

    def position(self):
        return dict(self.pos)

    async def notify_checkpoint_complete(self, positions):
        self.committed.update({int(p): int(o) for p, o in positions.items()})


def job(source):
    flow = Dataflow("scale-out")
    results = flow.source(source, timestamp="ts", watermark=BoundedOutOfOrderness(1000)).key_by("k").window(
        Tumbling(500)).aggregate(n=agg.count(), total=agg.sum("v"))
    results.sink(CollectSink(), name="out")
    return flow, next(s.params["sink"] for s in flow.steps if s.name == "out")


class Crash(Exception):
    pass


class CrashingCoordinator(CheckpointCoordinator):
    """Checkpoints at every batch boundary; the worker 'dies' after ``crash_after`` of them."""

    def __init__(self, *args, crash_after, **kwargs):
        super().__init__(*args, **kwargs)
        self.crash_after = crash_after
        self.boundaries = 0

    async def maybe_checkpoint(self, execution):
        self.boundaries += 1
        if self.boundaries % 3 == 0:
            await self.checkpoint(execution)
        if self.boundaries == self.crash_after:
            raise Crash()


def last_per_window(results):
    return {(r["key"], r["start"]): (r["n"], r["total"]) for r in results}


@pytest.mark.parametrize("crash_after", [7, 22, 37])
def test_partitions_taken_over_from_a_crashed_worker_continue_from_its_checkpoint(tmp_path, crash_after):
    data = partitioned_records()
    single, single_out = job(GroupSource(data, list(range(N_PARTITIONS)), {}))
    single.run()
    expected = last_per_window(single_out.results)

    committed: dict[int, int] = {}
    # Worker A owns partitions 0 and 1, checkpoints every third batch, and dies.
    worker_a, out_a = job(GroupSource(data, [0, 1], committed))
    with pytest.raises(JobFailedError):
        worker_a.run(checkpointer=CrashingCoordinator(tmp_path, worker_id="a", crash_after=crash_after))
    assert committed, "worker A committed offsets after durable checkpoints"
    # Worker B owns 2 and 3 from the start, and is then assigned A's partitions (a rebalance).
    worker_b, out_b = job(GroupSource(data, [2, 3, 0, 1], committed))
    worker_b.run(checkpointer=CheckpointCoordinator(tmp_path, worker_id="b", interval=None))
    got = last_per_window(out_a.results + out_b.results)  # at-least-once output: the last value counts
    assert got == expected
    assert worker_b.metrics()["window_1"]["shards"] == 4


def test_without_the_moved_state_the_results_would_differ(tmp_path):
    """Guard against a vacuous pass: dropping A's state (a fresh directory for B) changes the results."""
    data = partitioned_records()
    single, single_out = job(GroupSource(data, list(range(N_PARTITIONS)), {}))
    single.run()
    committed: dict[int, int] = {}
    worker_a, out_a = job(GroupSource(data, [0, 1], committed))
    with pytest.raises(JobFailedError):
        worker_a.run(checkpointer=CrashingCoordinator(tmp_path / "a", worker_id="a", crash_after=22))
    worker_b, out_b = job(GroupSource(data, [2, 3, 0, 1], committed))
    worker_b.run(checkpointer=CheckpointCoordinator(tmp_path / "b", worker_id="b"))
    assert last_per_window(out_a.results + out_b.results) != last_per_window(single_out.results)


class ResumingGroupSource(GroupSource):
    """A group source that seeks, as KafkaSource does: assigned partitions resume where the latest
    checkpoint holding their state left them (`Source.resume_positions`, set by the runtime), else at
    the group's committed offset. Commits can be made to fail (a rebalance under way)."""

    def __init__(self, *args, commits_fail_after=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.commits_fail_after = commits_fail_after
        self.commits = 0
        self.started = {}

    async def open(self, batch_size=None):
        await super().open(batch_size)
        resume = getattr(self, "resume_positions", None)
        if resume is not None:
            self.pos.update(await resume(list(self.assigned)))
        self.started = dict(self.pos)

    async def notify_checkpoint_complete(self, positions):
        self.commits += 1
        if self.commits_fail_after is not None and self.commits > self.commits_fail_after:
            return set()
        await super().notify_checkpoint_complete(positions)
        return {int(p) for p in positions}


def latest_positions(directory):
    from engine.state.storage import LocalCheckpointStorage

    return {int(p): o for p, o in LocalCheckpointStorage(directory, read_only=True).latest().state["sources"]["source_1"].items()}


def test_a_taken_over_partition_resumes_at_the_latest_checkpoint_not_the_older_group_offset(tmp_path):
    """Worker A's commits fail after its first checkpoint (the group's offsets lag), then it dies: B loads
    A's partitions from A's latest checkpoint and reads on from there, not from the group's offset."""
    data = partitioned_records()
    single, single_out = job(GroupSource(data, list(range(N_PARTITIONS)), {}))
    single.run()
    committed: dict[int, int] = {}
    worker_a, out_a = job(ResumingGroupSource(data, [0, 1], committed, commits_fail_after=1))
    with pytest.raises(JobFailedError):
        worker_a.run(checkpointer=CrashingCoordinator(tmp_path, worker_id="a", crash_after=31))
    a_latest = latest_positions(tmp_path / "worker-a")
    assert all(a_latest[p] > committed[p] for p in (0, 1)), (a_latest, committed)
    source_b = ResumingGroupSource(data, [2, 3, 0, 1], committed)
    worker_b, out_b = job(source_b)
    worker_b.run(checkpointer=CheckpointCoordinator(tmp_path, worker_id="b", interval=None))
    assert {p: source_b.started[p] for p in (0, 1)} == a_latest
    assert last_per_window(out_a.results + out_b.results) == last_per_window(single_out.results)


def test_the_furthest_checkpoint_of_any_worker_provides_the_partition_not_the_newest(tmp_path):
    """Two workers held partition 0 one after the other with no committed offset (the second started it
    from the beginning and got less far before it died). Both cuts are consistent; the next owner resumes
    from the furthest one, the older checkpoint, with that checkpoint's state (it re-reads the least)."""
    data = partitioned_records()
    single, single_out = job(GroupSource(data, list(range(N_PARTITIONS)), {}))
    single.run()
    far, out_far = job(ResumingGroupSource(data, [0], {}, commits_fail_after=0))
    with pytest.raises(JobFailedError):
        far.run(checkpointer=CrashingCoordinator(tmp_path, worker_id="far", crash_after=13))
    near, out_near = job(GroupSource(data, [0], {}))  # does not ask where to resume: starts at 0, empty
    with pytest.raises(JobFailedError):
        near.run(checkpointer=CrashingCoordinator(tmp_path, worker_id="near", crash_after=7))
    furthest = latest_positions(tmp_path / "worker-far")[0]
    assert furthest > latest_positions(tmp_path / "worker-near")[0]
    source = ResumingGroupSource(data, [0], {})
    last, out_last = job(source)
    last.run(checkpointer=CheckpointCoordinator(tmp_path, worker_id="last", interval=None))
    assert source.started == {0: furthest}
    expected = {k: v for k, v in last_per_window(single_out.results).items() if k[0] % N_PARTITIONS == 0}
    assert last_per_window(out_far.results + out_near.results + out_last.results) == expected
