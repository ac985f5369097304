"""The checkpoint coordinator: consistent cuts at batch boundaries, restore on start.

A checkpoint is taken between two batches, when everything read so far has gone through every operator
and sink (the runtime calls `maybe_checkpoint` there). The sequence is the two-phase commit of
SEMANTICS.md:

1. every sink pre-commits (flushes and makes durable, not yet visible) the output since the last one;
2. source positions, operator state and each sink's pending transaction are captured (on the loop, the
   consistent cut) and written as one checkpoint (atomically, see `engine.state.storage`) in a worker
   thread while the job processes the next batches;
3. only once the file is renamed and the directory fsynced, at the next batch boundary, sinks commit
   (make that output visible) and sources commit their offsets (Kafka groups).

At most one checkpoint is in flight; the final one (end of input) and savepoints are waited for. Sinks
that set ``commit_requires_barrier`` (one open transaction, e.g. Kafka's) make every checkpoint wait.

A crash before 2 completes leaves the previous checkpoint in force and the pre-committed output is
aborted on restore; a crash after it leaves a checkpoint whose pending output restore commits. Either way
the committed output equals that of an uninterrupted run, for sinks with two-phase commit.

On start, the latest intact checkpoint of the directory (or a savepoint given explicitly) is restored when
it belongs to the same job and the same graph; a checkpoint of a changed graph is refused with an
`IncompatibleCheckpointError` naming the differences, unless the run is started ``fresh``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from engine.errors import CheckpointError, IncompatibleCheckpointError
from engine.state.storage import (
    Checkpoint,
    LocalCheckpointStorage,
    read_savepoint,
    savepoint_parts,
    write_savepoint_parts,
)

logger = logging.getLogger(__name__)

__all__ = ["CheckpointCoordinator", "graph_of", "graph_differences"]


def _describe_value(value: Any) -> Any:
    """A stable, comparable description of a step parameter (callables by qualified name)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_describe_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _describe_value(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if callable(value) and hasattr(value, "__qualname__"):
        return f"callable {getattr(value, '__module__', '?')}.{value.__qualname__}"
    if type(value).__name__ == "DataContract":  # a contract is identified by its canonical fingerprint
        from engine.contracts import fingerprint

        return f"contract {value.name} {value.version} {fingerprint(value)}"
    describe = getattr(value, "describe", None)
    if callable(describe):
        return describe()
    return type(value).__name__ if "object at 0x" in repr(value) else repr(value)


def graph_of(plan: Any) -> list[dict[str, Any]]:
    """The job graph as data: every step's name, kind, inputs and parameters, in plan order."""
    graph = []
    for name, step in plan.steps.items():
        params = {k: _describe_value(v) for k, v in sorted(step.params.items()) if k not in ("source", "sink")}
        graph.append({"name": name, "kind": step.kind, "inputs": list(step.inputs), "params": params})
    return graph


def graph_differences(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    """What changed between two graphs, one sentence per difference (empty when compatible)."""
    before = {s["name"]: s for s in old}
    after = {s["name"]: s for s in new}
    differences = []
    for name in before.keys() - after.keys():
        differences.append(f"step {name!r} ({before[name]['kind']}) was removed")
    for name in after.keys() - before.keys():
        differences.append(f"step {name!r} ({after[name]['kind']}) was added")
    for name in before.keys() & after.keys():
        a, b = before[name], after[name]
        if a["kind"] != b["kind"]:
            differences.append(f"step {name!r} changed from {a['kind']} to {b['kind']}")
            continue
        if a["inputs"] != b["inputs"]:
            differences.append(f"step {name!r} now reads {b['inputs']} instead of {a['inputs']}")
        for key in sorted(a["params"].keys() | b["params"].keys()):
            if a["params"].get(key) != b["params"].get(key):
                differences.append(
                    f"step {name!r} parameter {key!r} changed from {a['params'].get(key)!r} to {b['params'].get(key)!r}"
                )
    return sorted(differences)


async def _notify_sources(execution: Any, positions: dict[str, dict[int, Any]]) -> set[tuple[str, int]]:
    """Tell sources that can commit offsets upstream (Kafka groups) that ``positions`` are durable.

    Returns the ``(source, partition)`` pairs whose position is now the upstream committed one: what a
    source's ``notify_checkpoint_complete`` returns (the partitions it committed), or all of its
    partitions when it returns ``None`` (sources without upstream commits).
    """
    committed: set[tuple[str, int]] = set()
    for node in execution.sources:
        mine = positions.get(node.name, {})
        notify = getattr(node.source, "notify_checkpoint_complete", None)
        done = None if notify is None else await notify(mine)
        pids = [int(p) for p in mine] if done is None else [int(p) for p in done]
        committed.update((node.name, p) for p in pids)
    return committed


def _latest_holding(checkpoints: list[Checkpoint], source: str, partition: int) -> tuple[Any, Checkpoint] | None:
    """``(position, checkpoint)``: of the scale-out ``checkpoints`` (newest first) holding the state of
    ``partition`` of ``source``, the one at its furthest position (the newest on a tie), or None."""
    best: tuple[Any, Checkpoint] | None = None
    for checkpoint in checkpoints:
        positions = checkpoint.state["sources"].get(source, {})
        position = positions.get(partition, positions.get(str(partition)))
        trackers = checkpoint.state["partitions"].get("trackers", {}).get(source, {})
        if position is None or trackers.get(partition, trackers.get(str(partition))) is None:
            continue  # the position without the partition's state is no use to its next owner
        try:
            further = best is None or position > best[0]
        except TypeError:  # positions this source cannot order: the newest checkpoint
            further = False
        if further:
            best = (position, checkpoint)
    return best


class CheckpointCoordinator:
    """Checkpoints of one job into ``directory``: every ``interval`` seconds (wall clock, taken at the
    next batch boundary), on demand (`request`), and once more when the input ends.

    ``fresh=True`` ignores existing checkpoints (new ones continue the numbering); ``start_from`` restores a
    savepoint file instead of the directory's latest checkpoint. ``keep`` is how many are retained.

    Asynchronous persistence: the cut is taken on the loop at a batch boundary, then written, fsynced
    and renamed in a worker thread while the job goes on; sinks commit and sources commit offsets only
    once that is done, at a later batch boundary (in order: at most one checkpoint is in flight). A
    failed write fails the job, unless ``tolerable_failed_checkpoints`` (as in Flink, default 0) allows
    that many failures in a row; a tolerated failure is logged and listed in ``failed``, and the
    previous checkpoint stays the latest good one.

    Scale-out (``worker_id``): several worker processes run the same job and share ``directory``; each
    writes its checkpoints to ``directory/worker-<worker_id>/`` holding its source positions and its
    *per-partition* state (the keyed operators' shards with their keys, and each partition's watermark
    tracker). Nothing is restored at start; when a partition is assigned to a worker (a consumer-group
    rebalance), its source asks `resume_positions` where to start it: the position in the latest
    checkpoint of any worker that holds the partition (the checkpoint wins over the group's committed
    offset, which may be older: commits fail during rebalances). The source seeks there and announces the
    partition at that position before reading it, and `partitions_assigned` loads the partition's state
    from that same checkpoint, so state and position always come from one consistent cut. (A source that
    cannot seek starts at the group's offset; then the newest checkpoint at exactly that offset provides
    the state.) A revoked partition's state is dropped; its next owner loads it the same way.
    """

    #: scale-out: distinct positions per partition whose newest checkpoint rotation keeps (a worker can
    #: be this many batches past the group's committed offset when it learns of a revocation)
    POSITIONS_KEPT = 8

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        interval: float | None = None,
        keep: int = 3,
        fresh: bool = False,
        start_from: str | os.PathLike | None = None,
        worker_id: str | None = None,
        tolerable_failed_checkpoints: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (isinstance(tolerable_failed_checkpoints, bool) or not isinstance(tolerable_failed_checkpoints, int)
                or tolerable_failed_checkpoints < 0):
            raise ValueError(
                f"tolerable_failed_checkpoints must be an int >= 0, got {tolerable_failed_checkpoints!r}"
            )
        if interval is not None and (isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0):
            raise ValueError(f"checkpoint_interval must be a positive number of seconds, got {interval!r}")
        self.root = Path(directory)
        self.worker_id = worker_id
        if worker_id is not None:
            if not isinstance(worker_id, str) or not worker_id or "/" in worker_id or worker_id.startswith("."):
                raise ValueError(f"worker_id must be a non-empty name usable as a directory, got {worker_id!r}")
            if start_from is not None:
                raise ValueError("start_from (a savepoint) cannot be combined with worker_id (scale-out)")
            directory = self.root / f"worker-{worker_id}"
        self.storage = LocalCheckpointStorage(directory, keep=keep)
        self._keep = keep
        # Scale-out: for each of this worker's checkpoints, the position of every (source, partition) it
        # holds, and which of them the group committed. Rotation keeps, besides the newest ``keep``, the
        # newest checkpoint at each partition's furthest position (where its next owner resumes), at each
        # of the last `POSITIONS_KEPT` distinct positions of every partition and the newest one the group
        # committed (for sources that resume at the group's committed offset: commits fail during a
        # rebalance, and the worker goes on checkpointing the batches already queued before it sees the
        # revocation).
        self._held: dict[int, dict[tuple[str, int], Any]] = {}
        self._committed: dict[tuple[str, int], int] = {}
        # Scale-out: the checkpoint each assigned (source, partition) resumes from (`resume_positions`),
        # until its state is loaded from it (`partitions_assigned`).
        self._chosen: dict[tuple[str, int], tuple[Any, Checkpoint]] = {}
        if worker_id is not None:
            self.storage.keep = 2**62  # rotation is done here instead
            for checkpoint_id in self.storage.ids():  # from an earlier run of this worker: keep what it held
                try:
                    held = self.storage.read(checkpoint_id).state.get("sources", {})
                except (OSError, CheckpointError):
                    continue
                self._held[checkpoint_id] = {(src, int(p)): o for src, ps in held.items() for p, o in ps.items()}
        self.interval = interval
        self.fresh = fresh
        self.start_from = Path(start_from) if start_from is not None else None
        self.clock = clock
        self.restored: Checkpoint | None = None
        self.completed: list[int] = []
        self.last_checkpoint: Checkpoint | None = None
        self._next_id = self.storage.next_id()
        self._last_time = clock()
        self._requested: list[asyncio.Future] = []
        self._savepoints: list[tuple[Path, asyncio.Future]] = []
        self._graph: list[dict[str, Any]] | None = None
        self._job = ""
        self.tolerable_failed_checkpoints = tolerable_failed_checkpoints
        self.failed: list[int] = []  # checkpoints whose write failed (tolerated ones, and the last)
        self._failures_in_a_row = 0
        self._inflight: _InFlight | None = None
        self._writer: concurrent.futures.ThreadPoolExecutor | None = None  # one thread: one write at a time

    # ---- restore ----

    async def restore(self, execution: Any) -> Checkpoint | None:
        """Before sources and sinks open: restore the latest good checkpoint of this job, if any."""
        self._job = execution.flow_name
        self._graph = graph_of(execution.plan)
        if self.worker_id is not None:  # state comes per partition, as partitions are assigned
            await execution.recover_sinks({})
            self._last_time = self.clock()
            return None
        checkpoint = None
        if self.start_from is not None:
            checkpoint = read_savepoint(self.start_from)
        elif not self.fresh:
            checkpoint = await asyncio.to_thread(self.storage.latest)
        if checkpoint is None:
            await execution.recover_sinks({})
            self._last_time = self.clock()
            return None
        if checkpoint.job != self._job:
            raise IncompatibleCheckpointError(
                f"the checkpoint {checkpoint.checkpoint_id} in {self.storage.directory} belongs to job "
                f"{checkpoint.job!r}, not {self._job!r}; use another checkpoint directory, or start fresh"
            )
        differences = graph_differences(checkpoint.graph, self._graph)
        if differences:
            raise IncompatibleCheckpointError(
                f"job {self._job!r} cannot resume from checkpoint {checkpoint.checkpoint_id}: its graph changed: "
                + "; ".join(differences)
                + ". Start it fresh (fresh=True / --fresh) to discard the old state."
            )
        execution.restore_operators(checkpoint.state["operators"])
        execution.seek_sources(checkpoint.state["sources"])
        await execution.recover_sinks(checkpoint.state["sinks"])
        self.restored = checkpoint
        self._next_id = max(self._next_id, checkpoint.checkpoint_id + 1)
        self._last_time = self.clock()
        logger.info("job %r restored checkpoint %d", self._job, checkpoint.checkpoint_id)
        return checkpoint

    # ---- taking checkpoints ----

    def request(self) -> asyncio.Future:
        """Ask for a checkpoint at the next batch boundary; the future resolves to its id."""
        future = asyncio.get_running_loop().create_future()
        self._requested.append(future)
        return future

    def request_savepoint(self, path: str | os.PathLike) -> asyncio.Future:
        """Ask for a savepoint (a checkpoint written to ``path``, never rotated away)."""
        future = asyncio.get_running_loop().create_future()
        self._savepoints.append((Path(path), future))
        return future

    async def maybe_checkpoint(self, execution: Any) -> None:
        """A batch boundary: deliver the completion of a checkpoint whose write has finished, then start
        the next one if it is due (interval, `request`) and none is in flight.

        At most one checkpoint is in flight (Flink's ``max-concurrent-checkpoints = 1``). One that falls
        due while the previous is still being written is *delayed*, not skipped: it starts at the first
        batch boundary after the previous one completed, without the driver waiting for anything. (A skip
        would let the gap between two checkpoints, and so the input replayed after a crash, grow to twice
        the interval.) A savepoint request is taken the same way but waited for (see `checkpoint`).
        """
        pending = self._inflight
        if pending is not None:
            if not pending.write.done():
                return
            await self._complete(execution)
        due = self.interval is not None and self.clock() - self._last_time >= self.interval
        if self._savepoints:
            await self.checkpoint(execution)
        elif due or self._requested:
            await self._start(execution)

    async def finish(self, execution: Any) -> None:
        """Every input ended: one last checkpoint, durable before the sinks finish, so a restart does
        not replay committed output.

        The run cannot end on a failed one: the sinks would finish without committing the output since
        the previous checkpoint (a transaction would stay open). A tolerated failure is retried, as
        Flink keeps checkpointing until a finished job's final checkpoint completes; more than
        ``tolerable_failed_checkpoints`` in a row fail the job as any checkpoint does.
        """
        while await self.checkpoint(execution) not in self.completed:
            pass

    async def close(self, execution: Any) -> None:
        """The run is over (also after a failure or cancellation): wait for a checkpoint still being
        written, so no thread writes into the directory after the run returned. If it became durable its
        completion is delivered (sinks commit, sources commit offsets: the same a restart's `recover`
        would do); if its write failed, that is logged (the run is failing already)."""
        pending = self._inflight
        try:
            if pending is None:
                return
            await _written(pending.write)
            if pending.write.exception() is None:
                await self._complete(execution)
                return
            self._inflight = None
            self.failed.append(pending.checkpoint.checkpoint_id)
            logger.warning("job %r: checkpoint %d, still being written when the run ended, failed: %s",
                           self._job, pending.checkpoint.checkpoint_id, pending.write.exception())
            _fail(pending.futures(), CheckpointError(
                f"job {self._job!r} ended before checkpoint {pending.checkpoint.checkpoint_id} completed"))
        finally:
            self._shutdown_writer()

    def _shutdown_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.shutdown(wait=False)  # idle by now: nothing is in flight

    @property
    def in_flight(self) -> int | None:
        """The id of the checkpoint being written in the background, if any."""
        return None if self._inflight is None else self._inflight.checkpoint.checkpoint_id

    def _state(self, execution: Any, positions: dict[str, dict[int, Any]]) -> dict[str, Any]:
        if self.worker_id is None:
            return {"sources": positions, "operators": execution.snapshot_operators(), "sinks": execution.sink_states()}
        return {"sources": positions, "partitions": execution.snapshot_partitions(), "sinks": execution.sink_states(),
                "worker": self.worker_id}

    # ---- partitions moving between workers ----

    def _rotate_worker_checkpoints(self) -> None:
        ids = sorted(self._held)
        keep = set(ids[-self._keep:])
        newest_at: dict[tuple[str, int], dict[Any, int]] = {}  # partition -> position -> newest checkpoint
        for checkpoint_id in ids:
            for held, position in self._held[checkpoint_id].items():
                at = newest_at.setdefault(held, {})
                at.pop(position, None)  # re-insert: dicts keep insertion order, newest position last
                at[position] = checkpoint_id
        for at in newest_at.values():
            keep.update(list(at.values())[-self.POSITIONS_KEPT:])
            try:  # the partition's furthest position: what `resume_positions` hands its next owner
                keep.add(at[max(at)])
            except TypeError:  # positions this source cannot order
                pass
        keep.update(self._committed.values())
        for checkpoint_id in ids:
            if checkpoint_id not in keep:
                self.storage._path(checkpoint_id).unlink(missing_ok=True)
                del self._held[checkpoint_id]

    def _all_checkpoints(self) -> list[Checkpoint]:
        """Every intact checkpoint of this job by any worker sharing the directory, newest first."""
        found = []
        for directory in sorted(self.root.glob("worker-*")):
            storage = LocalCheckpointStorage(directory, read_only=True)  # other workers write there
            try:
                ids = storage.ids()
            except OSError:
                continue
            for checkpoint_id in ids:
                try:
                    checkpoint = storage.read(checkpoint_id)
                except (OSError, CheckpointError):  # rotated away meanwhile, or torn: skip it
                    continue
                if checkpoint.job == self._job and "partitions" in checkpoint.state:
                    found.append(checkpoint)
        found.sort(key=lambda c: c.created, reverse=True)
        return found

    async def resume_positions(self, source: str, partitions: list[int]) -> dict[int, Any]:
        """Scale-out: where newly assigned ``partitions`` of ``source`` resume (`Source.resume_positions`).

        For each partition, the latest checkpoint of any worker sharing the directory that holds its state:
        the one at the partition's furthest position (positions of one partition are ordered; the wall
        clocks of different workers need not be), the newest of those on a tie. Any such checkpoint is a
        consistent cut of the partition (state and position taken together), including those a worker
        took after the group had already revoked the partition (it finishes the batches it had read), and
        the furthest one re-reads the least. The chosen checkpoint is kept for `partitions_assigned`, which
        loads the state from it when the partition is announced at that position. Partitions that no
        checkpoint holds are left out (they start at the group's offset, or by the source's start rule).
        """
        if self.worker_id is None:
            return {}
        checkpoints = await asyncio.to_thread(self._all_checkpoints)
        positions = {}
        for partition in partitions:
            latest = _latest_holding(checkpoints, source, int(partition))
            if latest is None:
                continue
            position, checkpoint = latest
            self._chosen[(source, int(partition))] = (position, checkpoint)
            positions[partition] = position
            logger.debug("job %r: partition %s of %r resumes at %s from checkpoint %d (of %s)", self._job, partition,
                         source, position, checkpoint.checkpoint_id, checkpoint.state.get("worker"))
        return positions

    async def partitions_assigned(self, execution: Any, source: str, starts: dict[int, Any]) -> None:
        """Load the state of newly assigned partitions (before their data is processed): from the
        checkpoint `resume_positions` chose when the partition starts at its position, else from the newest
        checkpoint of any worker holding the partition at exactly ``start`` (sources that do not seek to
        the checkpoint: they resume at the group's committed offset, committed only after a durable
        checkpoint at that position)."""
        if self.worker_id is None:
            return
        checkpoints = None
        for partition, start in starts.items():
            chosen = self._chosen.pop((source, int(partition)), None)
            if chosen is not None:
                position, checkpoint = chosen
                if position == start and execution.restore_partition(source, partition, checkpoint.state["partitions"]):
                    logger.info("job %r: partition %s of %r restored from checkpoint %d (of %s) at %s",
                                self._job, partition, source, checkpoint.checkpoint_id,
                                checkpoint.state.get("worker"), start)
                    continue
                logger.warning("job %r: partition %s of %r starts at %r, not at %r where checkpoint %d holds it",
                               self._job, partition, source, start, position, checkpoint.checkpoint_id)
            if checkpoints is None:
                checkpoints = await asyncio.to_thread(self._all_checkpoints)
            held_by_any = False
            for checkpoint in checkpoints:
                positions = checkpoint.state["sources"].get(source, {})
                position = positions.get(partition, positions.get(str(partition)))
                if position is None:
                    continue
                held_by_any = True
                if position == start and execution.restore_partition(source, partition, checkpoint.state["partitions"]):
                    logger.info("job %r: partition %s of %r restored from checkpoint %d (of %s) at %s",
                                self._job, partition, source, checkpoint.checkpoint_id,
                                checkpoint.state.get("worker"), start)
                    break
            else:
                if held_by_any:
                    logger.error(
                        "job %r: no checkpoint holds partition %s of %r at position %r (the group's offset); its "
                        "keyed state starts empty", self._job, partition, source, start,
                    )
                else:
                    logger.debug("job %r: partition %s of %r is in no checkpoint; it starts empty at %s",
                                 self._job, partition, source, start)

    async def checkpoint(self, execution: Any) -> int:
        """Take one checkpoint now (the caller guarantees a batch boundary) and wait until it is durable
        and its completion delivered; returns its id. A checkpoint still in flight completes first.

        Used for the final checkpoint, savepoints, and by callers that need the checkpoint done; the
        periodic ones start in `maybe_checkpoint` and complete in the background.
        """
        await self._settle(execution)
        checkpoint_id = await self._start(execution)
        await self._settle(execution)
        return checkpoint_id

    async def _start(self, execution: Any) -> int:
        """Take the consistent cut on the loop and start writing it in a worker thread.

        On the loop: sinks pre-commit, then source positions, operator state and sink state are captured
        and the checkpoint's metadata is encoded (so later batches cannot change it; numpy arrays of the
        state are fresh copies made by the operators' ``snapshot()``, referenced by the encoding). In the
        thread: checksum, write, fsync, rename, directory fsync, rotation, savepoint files. The
        completion (sinks commit, sources commit their offsets, `request` futures resolve) is delivered
        on the loop by `_complete`, at a batch boundary, only after the rename is durable.
        """
        checkpoint_id = self._next_id
        self._next_id += 1
        requested, self._requested = self._requested, []
        savepoints, self._savepoints = self._savepoints, []
        try:
            await execution.pre_commit_sinks(checkpoint_id)
            positions = execution.source_positions()
            checkpoint = Checkpoint(
                checkpoint_id=checkpoint_id,
                job=self._job or execution.flow_name,
                graph=self._graph if self._graph is not None else graph_of(execution.plan),
                state=self._state(execution, positions),
            )
            parts = checkpoint.body_parts()
            # encoded here, on the loop, like the checkpoint: the writer thread only writes bytes
            saved = savepoint_parts(checkpoint) if savepoints else None
        except BaseException as exc:
            _fail(requested + [f for _, f in savepoints], exc)
            raise
        self._last_time = self.clock()
        if self.worker_id is not None:
            self._held[checkpoint_id] = {(src, int(p)): o for src, ps in positions.items() for p, o in ps.items()}
        if self._writer is None:
            self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="engine-checkpoint")
        # A concurrent future (not an asyncio one): `done()` is true the moment the thread finishes, even
        # while the driver runs batch after batch without yielding to the event loop.
        write = self._writer.submit(self._write, checkpoint, parts, [p for p, _ in savepoints], saved)
        self._inflight = _InFlight(checkpoint, positions, requested, savepoints, write)
        if any(getattr(node.sink, "commit_requires_barrier", False) for node in execution.sinks):
            # e.g. a Kafka transaction: what the sink receives from now on would be committed with this
            # checkpoint, so it must complete before the next batch is written.
            await self._settle(execution)
        return checkpoint_id

    def _write(self, checkpoint: Checkpoint, parts: list, savepoints: list[Path],
               saved: list | None) -> dict[Path, Exception]:
        """In a worker thread: make ``checkpoint`` durable, then write the requested savepoints (``saved``:
        their encoded body). Returns the savepoints that failed: a failed savepoint fails its own
        request, not the durable checkpoint."""
        self.storage.write_body(checkpoint.checkpoint_id, parts)
        failed: dict[Path, Exception] = {}
        for path in savepoints:
            try:
                write_savepoint_parts(path, saved)
            except Exception as exc:  # noqa: BLE001 - reported to the savepoint's caller
                failed[path] = exc
        return failed

    async def _settle(self, execution: Any) -> None:
        """Wait for the checkpoint in flight, if any, and deliver its completion."""
        pending = self._inflight
        if pending is not None:
            await _written(pending.write)
            await self._complete(execution)

    async def _complete(self, execution: Any) -> None:
        """The write of the checkpoint in flight has ended: if it failed, count it (the job fails once
        more than ``tolerable_failed_checkpoints`` fail in a row); if it is durable, sinks commit, then
        sources commit their offsets, then the futures waiting for it resolve."""
        pending, self._inflight = self._inflight, None
        checkpoint = pending.checkpoint
        checkpoint_id = checkpoint.checkpoint_id
        exc = pending.write.exception()
        if exc is not None:
            self._held.pop(checkpoint_id, None)
            self.failed.append(checkpoint_id)
            self._failures_in_a_row += 1
            error = CheckpointError(
                f"job {checkpoint.job!r}: checkpoint {checkpoint_id} could not be written to "
                f"{self.storage.directory}: {type(exc).__name__}: {exc}"
            )
            _fail(pending.futures(), error)
            if self._failures_in_a_row > self.tolerable_failed_checkpoints:
                raise CheckpointError(
                    f"{error}; {self._failures_in_a_row} checkpoint(s) failed in a row, more than "
                    f"tolerable_failed_checkpoints={self.tolerable_failed_checkpoints}, so the job fails "
                    f"(its previous checkpoint stays the latest good one)"
                ) from exc
            logger.error("%s (%d failed in a row, %d tolerated; the job goes on)",
                         error, self._failures_in_a_row, self.tolerable_failed_checkpoints)
            return
        self._failures_in_a_row = 0
        failed_savepoints = pending.write.result()
        for path, future in pending.savepoints:
            if future.done():
                continue
            if path in failed_savepoints:
                exc = failed_savepoints[path]
                future.set_exception(CheckpointError(
                    f"job {checkpoint.job!r}: savepoint {path} of checkpoint {checkpoint_id} could not be "
                    f"written: {type(exc).__name__}: {exc}"))
            else:
                future.set_result(path)
        await execution.commit_sinks(checkpoint_id)
        committed = await _notify_sources(execution, pending.positions)
        if self.worker_id is not None:
            for held in committed:
                self._committed[held] = checkpoint_id
            await asyncio.to_thread(self._rotate_worker_checkpoints)
        self.last_checkpoint = checkpoint
        self.completed.append(checkpoint_id)
        for future in pending.requested:
            if not future.done():
                future.set_result(checkpoint_id)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("job %r checkpoint %d complete at %s; committed %s", checkpoint.job, checkpoint_id,
                         pending.positions, sorted(committed) if self.worker_id is not None else "-")


class _InFlight:
    """A checkpoint whose cut is taken and whose write runs in a worker thread (``write``)."""

    __slots__ = ("checkpoint", "positions", "requested", "savepoints", "write")

    def __init__(self, checkpoint: Checkpoint, positions: dict, requested: list, savepoints: list,
                 write: concurrent.futures.Future):
        self.checkpoint = checkpoint
        self.positions = positions
        self.requested = requested
        self.savepoints = savepoints
        self.write = write

    def futures(self) -> list[asyncio.Future]:
        return self.requested + [f for _, f in self.savepoints]


async def _written(write: concurrent.futures.Future) -> None:
    """Wait until a checkpoint write has ended, however it ended: callers read its outcome from ``write``."""
    waiter = asyncio.wrap_future(write)
    # the outcome is read from ``write``; reading it here too keeps asyncio from logging the copy's
    # failure as "never retrieved" (also when this wait is cancelled and the write fails later)
    waiter.add_done_callback(lambda f: f.cancelled() or f.exception())
    await asyncio.wait({waiter})


def _fail(futures: list[asyncio.Future], exc: BaseException) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(exc if isinstance(exc, Exception) else CheckpointError(repr(exc)))
