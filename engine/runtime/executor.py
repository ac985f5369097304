"""Running a compiled plan on one asyncio loop.

One task per source reads chunks and puts them on a bounded queue (``queue_size`` batches): when the
operators or a sink fall behind, ``put`` blocks and the sources stop reading, so memory stays bounded
(backpressure). One driver consumes the queue and pushes each batch synchronously through the fused
operator chains; only sink writes are awaited. Every batch, even an empty one, moves the watermark on.

When every source has ended, each source partition's watermark becomes INT64_MAX, so every window
fires and every join purges; dead-letter streams get a final watermark, sinks are finished (flushed
and committed) and the run returns. On cancellation or failure the sources are stopped, sinks are
aborted (nothing half-written is made visible) and every connector is closed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any

import numpy as np

from engine.batch import Batch
from engine.dead_letters import DeadLetter
from engine.errors import (
    ConnectorError,
    EngineError,
    FlowDefinitionError,
    IncompatibleCheckpointError,
    JobFailedError,
    RecordError,
)
from engine.io import Sink, SourceChunk
from engine.runtime.keys import KeyDomain
from engine.runtime.metrics import Metrics, StepMetrics
from engine.runtime.operators.base import INT64_MAX, INT64_MIN, Operator, Output
from engine.runtime.operators.contracts import ValidateOperator
from engine.runtime.operators.joins import IntervalJoinOperator
from engine.runtime.operators.sources import SourceOperator
from engine.runtime.operators.stateless import (
    FilterOperator,
    FlatMapOperator,
    KeyByOperator,
    MapOperator,
    PassThrough,
    UnionOperator,
)
from engine.runtime.operators.sharding import ShardedOperator, shard_of
from engine.runtime.operators.windowing import make_window_operator
from engine.runtime.plan import Plan, compile_flow
from engine.runtime.projection import source_projection

logger = logging.getLogger(__name__)

__all__ = ["Execution", "run_blocking"]

_END = object()
_TICK = object()


class _Node:
    """A step at run time: its operator (or sink), where its outputs go, its counters."""

    __slots__ = ("name", "kind", "op", "sink", "source", "children", "late_child", "dead_child", "metrics")

    def __init__(self, name: str, kind: str, metrics: StepMetrics) -> None:
        self.name = name
        self.kind = kind
        self.op: Operator | None = None
        self.sink: Sink | None = None
        self.source: Any = None
        self.children: list[tuple[_Node, int]] = []
        self.late_child: _Node | None = None
        self.dead_child: _Node | None = None
        self.metrics = metrics


def _failure_message(flow: str, letter: DeadLetter) -> str:
    detail = f"field {letter.field!r}, value {letter.value!r}" if letter.field is not None else f"record {letter.record!r}"
    return (
        f"job {flow!r} failed at step {letter.step!r}: {letter.error} ({detail}). Attach "
        f".dead_letters() to that step (or flow.dead_letters()) to route bad records and keep running."
    )


class Execution:
    """One run of a flow. ``metrics`` is live while it runs."""

    def __init__(
        self, flow: Any, *, batch_size: int | None = None, queue_size: int = 4, checkpointer: Any = None
    ) -> None:
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
            raise FlowDefinitionError(f"batch_size must be a positive int, got {batch_size!r}")
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise FlowDefinitionError(f"queue_size must be a positive int, got {queue_size!r}")
        self.flow_name = flow.name
        self.plan: Plan = compile_flow(flow)
        self.batch_size = batch_size
        self.queue_size = queue_size
        self.checkpointer = checkpointer
        # Per source, per partition: the position after the last chunk the driver has pushed through
        # every operator (the pump reads ahead into the queue, so the source's own position is not it).
        self._positions: dict[str, dict[int, Any]] = {}
        self.state = "created"  # -> running -> finished | failed | cancelled
        self.metrics = Metrics({name: step.kind for name, step in self.plan.steps.items()})
        self.nodes = self._build_nodes()
        self.sources = [n for n in self.nodes.values() if n.kind == "source"]
        self.sinks = [n for n in self.nodes.values() if n.kind == "sink"]

    # ---- wiring ----

    def _build_nodes(self) -> dict[str, _Node]:
        plan = self.plan
        domains: dict[int, KeyDomain] = {}

        def domain(step_name: str) -> KeyDomain:
            return domains.setdefault(plan.key_domain[step_name], KeyDomain())

        # Keyed state per input partition only when partitions can move between workers (scale-out);
        # a single worker keeps one state per key, whatever partitions the key arrives on.
        by_partition = self.by_partition = getattr(self.checkpointer, "worker_id", None) is not None
        nodes: dict[str, _Node] = {}
        for name, step in plan.steps.items():
            node = _Node(name, step.kind, self.metrics[name])
            p = step.params
            if step.kind == "source":
                node.source = p["source"]
                node.source.scale_out = by_partition
                # Scale-out: an assigned partition resumes where the latest checkpoint holding its state
                # (of any worker) left it, and its state comes from that checkpoint.
                resume = getattr(self.checkpointer, "resume_positions", None) if by_partition else None
                node.source.resume_positions = functools.partial(resume, name) if resume is not None else None
                node.source.project(source_projection(plan, name))
                node.op = SourceOperator(name, list(node.source.partitions()), p["timestamp"], p["watermark"],
                                         monotonic=not by_partition)
            elif step.kind == "map":
                node.op = MapOperator(name, p["fn"])
            elif step.kind == "flat_map":
                node.op = FlatMapOperator(name, p["fn"])
            elif step.kind == "validate":
                node.op = ValidateOperator(name, p["contract"])
            elif step.kind == "filter":
                node.op = FilterOperator(name, p["fn"])
            elif step.kind == "key_by":
                node.op = KeyByOperator(name, p["key"], domain(name))
            elif step.kind == "union":
                node.op = UnionOperator(name, len(step.inputs), plan.origins[name])
            elif step.kind == "window":
                node.op = ShardedOperator(name, functools.partial(make_window_operator, name, p, domain(name)),
                                          domain(name), by_partition)
            elif step.kind == "interval_join":
                node.op = ShardedOperator(name, functools.partial(
                    IntervalJoinOperator, name, p["lower"], p["upper"], p["lower_exclusive"], p["upper_exclusive"],
                    p["combine"], plan.origins[name], domain(name)), domain(name), by_partition)
            elif step.kind in ("late", "dead_letters"):
                node.op = PassThrough(name)
            elif step.kind == "sink":
                node.sink = p["sink"]
            else:  # pragma: no cover - the builder only makes the kinds above
                raise FlowDefinitionError(f"unknown step kind {step.kind!r} of {name!r}")
            nodes[name] = node
        for name, node in nodes.items():
            node.children = [(nodes[c], i) for c, i in plan.consumers[name]]
            if name in plan.late_output:
                node.late_child = nodes[plan.late_output[name]]
            if name in plan.dead_letter_output:
                node.dead_child = nodes[plan.dead_letter_output[name]]
        return nodes

    # ---- running ----

    async def run(self) -> None:
        started = time.perf_counter()
        queue: asyncio.Queue = asyncio.Queue(maxsize=self.queue_size)
        pumps: list[asyncio.Task] = []
        opened_sources: list[_Node] = []
        opened_sinks: list[_Node] = []
        finished = False
        logger.info("job %r starting: %d sources, %d sinks", self.flow_name, len(self.sources), len(self.sinks))
        self.state = "running"
        try:
            if self.checkpointer is not None:
                await self.checkpointer.restore(self)
            for node in self.sinks:
                await node.sink.open()
                opened_sinks.append(node)
            for node in self.sources:
                await node.source.open(self.batch_size)
                opened_sources.append(node)
                self._positions[node.name] = dict(node.source.position())
            await self._partitions_known_at_start()
            pumps = [asyncio.create_task(self._pump(node, queue), name=f"engine source {node.name}") for node in self.sources]
            await self._drive(queue)
            await self._end_side_outputs()
            final_hook = getattr(self.checkpointer, "finish", None)
            if final_hook is not None:
                await final_hook(self)  # every input ended: a last checkpoint before the sinks finish
            for node in self.sinks:
                await node.sink.finish()
            finished = True
            self.state = "finished"
        except asyncio.CancelledError:
            self.state = "cancelled"
            logger.info("job %r cancelled; aborting sinks", self.flow_name)
            raise
        except EngineError:
            self.state = "failed"
            raise
        except Exception as exc:
            self.state = "failed"
            raise JobFailedError(f"job {self.flow_name!r} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            for task in pumps:
                task.cancel()
            if pumps:
                await asyncio.gather(*pumps, return_exceptions=True)
            close_hook = getattr(self.checkpointer, "close", None)
            if close_hook is not None:  # a checkpoint may still be written in a thread: let it end
                await _quietly(close_hook(self), "close of the checkpointer")
            if not finished:
                for node in opened_sinks:
                    await _quietly(node.sink.abort(), f"abort of sink {node.name!r}")
            for node in opened_sources:
                await _quietly(node.source.close(), f"close of source {node.name!r}")
            for node in opened_sinks:
                await _quietly(node.sink.close(), f"close of sink {node.name!r}")
            self.metrics.seconds = time.perf_counter() - started
            for node in self.nodes.values():
                if node.op is not None:
                    node.metrics.state = node.op.state_size()
        logger.info(
            "job %r finished: %d records in, %d out, %.3fs",
            self.flow_name, self.metrics.records_in, self.metrics.records_out, self.metrics.seconds,
        )

    async def _pump(self, node: _Node, queue: asyncio.Queue) -> None:
        """Read one source into the shared bounded queue; ``put`` blocks when the job falls behind."""
        metrics = node.metrics
        op: SourceOperator = node.op  # type: ignore[assignment]
        try:
            iterator = node.source.read().__aiter__()
            idle = op.idle_timeout
            while True:
                if idle is None:
                    try:
                        chunk = await iterator.__anext__()
                    except StopAsyncIteration:
                        break
                else:
                    # Wait for the next chunk without cancelling it, ticking so idleness is noticed.
                    pending = asyncio.ensure_future(iterator.__anext__())
                    try:
                        while True:
                            done, _ = await asyncio.wait({pending}, timeout=idle / 2000.0)
                            if done:
                                break
                            await queue.put((node, _TICK))
                    except BaseException:
                        pending.cancel()
                        raise
                    try:
                        chunk = pending.result()
                    except StopAsyncIteration:
                        break
                await queue.put((node, chunk))
                metrics.extra["queued_batches_max"] = max(metrics.extra.get("queued_batches_max", 0), queue.qsize())
                # Let the loop turn after every chunk: a source whose reads return at once (aiokafka's
                # getmany on prefetched data) would otherwise fill the queue in one long step, and the I/O
                # of everything else (the producer's round trips, fetches, heartbeats) would wait for it.
                await asyncio.sleep(0)
            await queue.put((node, _END))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await queue.put((node, exc))

    async def _drive(self, queue: asyncio.Queue) -> None:
        running = len(self.sources)
        while running:
            node, item = await queue.get()
            op: SourceOperator = node.op  # type: ignore[assignment]
            if item is _END:
                running -= 1
                for partition in op.known_partitions() or [0]:
                    await self._deliver(node, op.end_partition(partition))
            elif item is _TICK or _is_heartbeat(item):
                if item is not _TICK:
                    if item.partition not in op.partitions:
                        await self._partition_assigned(node, item)
                    op.register_partition(item.partition)
                    if item.position is not None:
                        self._positions[node.name][item.partition] = item.position
                out = op.tick(time.monotonic())
                if out is not None:
                    await self._deliver(node, out)
            elif isinstance(item, BaseException):
                if isinstance(item, EngineError):
                    raise item
                raise ConnectorError(f"source {node.name!r} failed: {type(item).__name__}: {item}") from item
            else:
                chunk: SourceChunk = item
                if chunk.partition not in op.partitions and not chunk.revoked:
                    await self._partition_assigned(node, chunk)
                n = len(chunk) + len(chunk.errors)
                node.metrics.records_in += n
                if n:
                    node.metrics.batches += 1
                await self._deliver(node, op.process_chunk(chunk))
                positions = self._positions[node.name]
                if self.by_partition:
                    # Scale-out: the partition's state leaves with it, so does its position. A single
                    # worker keeps the state of a revoked partition (it may come back), and so must keep
                    # its position in checkpoints: without it a restore would start that partition at the
                    # group's older committed offset and count records twice.
                    for partition in chunk.revoked:
                        positions.pop(partition, None)
                if chunk.revoked:
                    await self._partitions_revoked(node, chunk.revoked)
                if chunk.position is not None:
                    positions[chunk.partition] = chunk.position
            if self.checkpointer is not None:
                # A batch boundary: everything read so far has gone through every operator and sink.
                await self.checkpointer.maybe_checkpoint(self)

    # ---- partitions moving between workers (consumer-group rebalances) ----

    async def _partition_assigned(self, node: _Node, chunk: SourceChunk) -> None:
        """A partition this worker had not read: let the checkpointer bring its state (before its data)."""
        logger.debug("job %r: partition %s of %r assigned at %s", self.flow_name, chunk.partition, node.name,
                     chunk.position)
        hook = getattr(self.checkpointer, "partitions_assigned", None)
        if hook is not None:
            await hook(self, node.name, {chunk.partition: chunk.position})

    async def _partitions_known_at_start(self) -> None:
        """Partitions a source lists before reading are assigned too (at the positions it opened at)."""
        hook = getattr(self.checkpointer, "partitions_assigned", None)
        if hook is None:
            return
        for node in self.sources:
            known = node.op.known_partitions()  # type: ignore[union-attr]
            if known:
                positions = self._positions[node.name]
                await hook(self, node.name, {pid: positions.get(pid) for pid in known})

    async def _partitions_revoked(self, node: _Node, partitions: list[int]) -> None:
        logger.debug("job %r: partitions %s of %r revoked", self.flow_name, partitions, node.name)
        if self.by_partition:  # a single worker keeps its state: the partition may come back to it
            for partition in partitions:
                self.drop_partition(node.name, partition)
        hook = getattr(self.checkpointer, "partitions_revoked", None)
        if hook is not None:
            await hook(self, node.name, list(partitions))

    def keyed_operators(self) -> dict[str, ShardedOperator]:
        return {name: n.op for name, n in self.nodes.items() if isinstance(n.op, ShardedOperator)}

    def snapshot_partitions(self) -> dict[str, Any]:
        """Moveable per-partition state: every keyed operator's shards (with their keys) and every source
        partition's watermark tracker. See `restore_partition`."""
        return {
            "shards": {name: {shard: op.snapshot_shard(shard) for shard in op.shard_ids()}
                       for name, op in self.keyed_operators().items()},
            "trackers": {node.name: {pid: node.op.snapshot_partition(pid) for pid in node.op.known_partitions()}  # type: ignore[union-attr]
                         for node in self.sources},
        }

    def restore_partition(self, source: str, partition: int, state: dict[str, Any]) -> bool:
        """Restore partition ``partition`` of ``source`` from ``state`` (`snapshot_partitions` output,
        maybe another worker's): its tracker and, in every keyed operator, its shard. Returns whether the
        state held the partition."""
        trackers = state.get("trackers", {}).get(source, {})
        tracker = trackers.get(partition, trackers.get(str(partition)))
        if tracker is None:
            return False
        self.nodes[source].op.restore_partition(partition, tracker)  # type: ignore[union-attr]
        shard = shard_of(partition)
        for name, op in self.keyed_operators().items():
            shards = state.get("shards", {}).get(name, {})
            saved = shards.get(shard, shards.get(str(shard)))
            if saved is not None:
                op.restore_shard(shard, saved)
            else:
                op.drop_shard(shard)
        return True

    def drop_partition(self, source: str, partition: int) -> None:
        """Forget a revoked partition: its shard goes once no partition this worker reads maps to it."""
        shard = shard_of(partition)
        for node in self.sources:
            for pid in node.op.known_partitions():  # type: ignore[union-attr]
                if shard_of(pid) == shard and (node.name, pid) != (source, partition):
                    return
        for op in self.keyed_operators().values():
            op.drop_shard(shard)

    # ---- checkpoint seam (used by engine.state's coordinator, between batches) ----

    def snapshot_operators(self) -> dict[str, dict[str, Any]]:
        """Every stateful operator's ``snapshot()``, by step name."""
        return {name: node.op.snapshot() for name, node in self.nodes.items() if node.op is not None}

    def restore_operators(self, snapshots: dict[str, dict[str, Any]]) -> None:
        """Restore operators from `snapshot_operators` output (before the run starts reading)."""
        for name, snapshot in snapshots.items():
            if name not in self.nodes or self.nodes[name].op is None:
                raise IncompatibleCheckpointError(
                    f"the checkpoint has state for step {name!r}, which flow {self.flow_name!r} does not have"
                )
            if snapshot:
                self.nodes[name].op.restore(snapshot)  # type: ignore[union-attr]

    def source_positions(self) -> dict[str, dict[int, Any]]:
        """Every source's position per partition after the last chunk pushed through the operators
        (chunks still queued are not included, so a restore re-reads them)."""
        return {name: dict(positions) for name, positions in self._positions.items()}

    def seek_sources(self, positions: dict[str, dict[int, Any]]) -> None:
        """Make every listed source resume from ``positions`` when it opens."""
        for node in self.sources:
            if node.name in positions:
                node.source.seek(positions[node.name])

    async def pre_commit_sinks(self, checkpoint_id: int) -> None:
        for node in self.sinks:
            await node.sink.pre_commit(checkpoint_id)

    async def commit_sinks(self, checkpoint_id: int) -> None:
        for node in self.sinks:
            await node.sink.commit(checkpoint_id)

    async def notify_checkpoint_complete(self, positions: dict[str, dict[int, Any]]) -> None:
        """Tell every source that the checkpoint holding ``positions`` (by source step) is durable."""
        for node in self.sources:
            if node.name in positions:
                await node.source.notify_checkpoint_complete(positions[node.name])

    def sink_states(self) -> dict[str, Any]:
        """Every sink's ``checkpoint_state()``, by step name (ask right after `pre_commit_sinks`)."""
        return {node.name: node.sink.checkpoint_state() for node in self.sinks}

    async def recover_sinks(self, states: dict[str, Any]) -> None:
        """Call ``recover`` on every sink with its state from ``states`` (``None`` when absent)."""
        for node in self.sinks:
            await node.sink.recover(states.get(node.name))

    async def _end_side_outputs(self) -> None:
        """Every input ended: give dead-letter streams their final watermark too."""
        for node in self.nodes.values():
            if node.kind == "dead_letters":
                await self._push(node, Batch.empty(INT64_MAX), 0)

    async def _push(self, node: _Node, batch: Batch, input_index: int) -> None:
        metrics = node.metrics
        n = len(batch)
        metrics.records_in += n
        if n:
            metrics.batches += 1
        if node.sink is not None:
            metrics.watermark = max(metrics.watermark, batch.watermark)
            if n:
                try:
                    await node.sink.write(batch)
                except EngineError:
                    raise
                except Exception as exc:
                    raise ConnectorError(f"sink {node.name!r} failed: {type(exc).__name__}: {exc}") from exc
                metrics.records_out += n
            return
        await self._deliver(node, node.op.process(batch, input_index))  # type: ignore[union-attr]

    async def _deliver(self, node: _Node, out: Output) -> None:
        metrics = node.metrics
        metrics.records_out += len(out.main)
        metrics.watermark = node.op.watermark  # type: ignore[union-attr]
        metrics.late_records += out.late_count
        metrics.state = node.op.state_size()  # type: ignore[union-attr]
        extra = node.op.extra_metrics()  # type: ignore[union-attr]
        if extra:
            metrics.extra.update(extra)
        if out.errors:
            await self._route_errors(node, out.errors)
        for child, index in node.children:
            await self._push(child, out.main, index)
        if node.late_child is not None:
            # An empty late batch still carries the watermark, so the late stream's consumers progress.
            late = out.late if out.late is not None else out.main.emptied()
            await self._push(node.late_child, late, 0)

    async def _route_errors(self, node: _Node, letters: list[DeadLetter]) -> None:
        node.metrics.errors += len(letters)
        target = node.dead_child
        if target is None:
            first = letters[0]
            cause = RecordError(first.error, step=first.step, field=first.field, value=first.value)
            error = JobFailedError(_failure_message(self.flow_name, first))
            error.step, error.field, error.value, error.record = first.step, first.field, first.value, first.record  # type: ignore[attr-defined]
            raise error from cause
        n = len(letters)
        times = np.full(n, INT64_MIN, dtype=np.int64)
        await self._push(target, Batch(times, times, records=list(letters), watermark=INT64_MIN), 0)


def _is_heartbeat(item: Any) -> bool:
    return (
        isinstance(item, SourceChunk) and item.records is None and item.columns is None
        and not item.errors and not item.revoked
    )


async def _quietly(awaitable: Any, what: str) -> None:
    """Run a clean-up step; log (never raise) its failure so the other clean-ups still run."""
    try:
        await awaitable
    except Exception:
        logger.exception("%s failed", what)


def run_blocking(flow: Any, **options: Any) -> None:
    """``flow.run()``: run the flow on a new event loop; refused inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise FlowDefinitionError(
            f"flow {flow.name!r}: run() blocks, so it cannot be called inside a running event loop; "
            f"use `await flow.run_async()` there"
        )
    asyncio.run(flow.run_async(**options))
