"""The fluent dataflow builder: a flow is a plain, validated description; nothing runs until ``run()``.

``Dataflow`` holds an ordered list of frozen `Step` records; `Stream` and its subclasses are thin
handles that append steps. Every builder call validates what it can immediately (window sizes,
unknown fields of a source that declares its fields, joins of unkeyed streams, duplicate step names)
and raises `FlowDefinitionError` saying what to do; `Dataflow.validate()` checks the whole graph
(at least one sink, no cycles, every window aggregated) and runs before every run and ``describe()``.
Execution lives in `engine.runtime` (this module imports no asyncio).

Semantics of the operators are those of SEMANTICS.md. Records keep their event timestamp through
``map``/``filter``/``flat_map``; a keyed stream stays keyed through ``filter`` only (``map`` may change
the record, so key again after it).
"""

from __future__ import annotations

import os
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from engine.aggregations import Aggregation
from engine.errors import CheckpointError, FlowDefinitionError
from engine.io import Sink, Source
from engine.time import BoundedOutOfOrderness, duration_ms
from engine.windows import Session, Sliding, Tumbling

__all__ = ["Dataflow", "JoinedStream", "KeyedStream", "Step", "Stream", "WindowedStream", "WindowResultStream"]

#: fields every window result carries besides the named aggregations
WINDOW_RESULT_FIELDS = ("key", "start", "end")

Fields = Mapping[str, Any]  # field name -> numpy dtype (or None when unknown)


@dataclass(frozen=True)
class Step:
    """One step of a flow: ``kind`` says what it does, ``inputs`` names its upstream steps in order
    (for ``late`` and ``dead_letters`` the step whose side output it is), ``params`` its settings."""

    name: str
    kind: str
    inputs: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict, compare=False)


class Dataflow:
    """A named stream-processing job under construction.

    ``flow.source(...)`` starts a stream; operators on streams add steps; ``stream.sink(...)`` ends one.
    ``run()`` executes the flow until every bounded source ends (blocking; inside a running event loop
    use ``await run_async()``). ``describe()`` returns the compiled plan as text and ``metrics()`` the
    per-step counters of the current or last run.
    """

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name.strip():
            raise FlowDefinitionError(f"a Dataflow needs a non-empty name, got {name!r}")
        self.name = name
        self._steps: dict[str, Step] = {}
        self._kind_counts: dict[str, int] = {}
        self._side_outputs: dict[tuple[str, str], str] = {}  # (step, "late"|"dead_letters") -> side step
        self._pending_windows: set[str] = set()
        self._last_run: Any = None

    # ---- building ----------------------------------------------------------------------------------

    @property
    def steps(self) -> tuple[Step, ...]:
        """The steps in the order they were added."""
        return tuple(self._steps.values())

    def _new_name(self, kind: str, name: str | None) -> str:
        if name is not None:
            if not isinstance(name, str) or not name.strip():
                raise FlowDefinitionError(f"step names must be non-empty strings, got {name!r} for a {kind} step")
            if name in self._steps or name in self._pending_windows:
                raise FlowDefinitionError(
                    f"flow {self.name!r} already has a step named {name!r}; give this {kind} step another name="
                )
            return name
        while True:
            self._kind_counts[kind] = count = self._kind_counts.get(kind, 0) + 1
            candidate = f"{kind}_{count}"
            if candidate not in self._steps and candidate not in self._pending_windows:
                return candidate

    def _add(self, kind: str, inputs: Iterable[str], name: str | None, **params: Any) -> Step:
        step = Step(self._new_name(kind, name), kind, tuple(inputs), types.MappingProxyType(params))
        self._steps[step.name] = step
        return step

    def source(
        self,
        source: Source,
        *,
        timestamp: str | Callable[[Any], int] | None = None,
        watermark: BoundedOutOfOrderness | None = None,
        name: str | None = None,
    ) -> Stream:
        """Start a stream reading ``source``.

        ``timestamp`` is the event time in int milliseconds: a field name (read as a column, the fast
        path) or a callable ``record -> int`` (side-effect free: it runs once per record, and again for
        the records of a batch in which one call raised, to find the bad one). It may be left out for a
        source that provides its own timestamps (``provides_timestamps``, e.g. Kafka record timestamps).
        ``watermark`` defaults to ``BoundedOutOfOrderness(0)`` (no allowance for disorder: a record older
        than the newest one seen may be late); each source partition gets its own watermark tracker.
        """
        if not isinstance(source, Source):
            raise FlowDefinitionError(
                f"flow.source() needs an engine.io.Source (e.g. connectors.memory.CollectionSource), got {source!r}"
            )
        label = f"source {name!r}" if name else f"source {source.describe()}"
        for step in self._steps.values():
            if step.kind == "source" and step.params["source"] is source:
                raise FlowDefinitionError(
                    f"{label}: this source object is already read by step {step.name!r}; reuse that stream "
                    f"(streams can feed several steps) or create a second source object"
                )
        if timestamp is None and not source.provides_timestamps:
            raise FlowDefinitionError(
                f"{label} needs timestamp=: a field name holding int milliseconds, or a callable record -> int"
            )
        if timestamp is not None and not (isinstance(timestamp, str) and timestamp) and not callable(timestamp):
            raise FlowDefinitionError(f"{label}: timestamp= must be a field name or a callable, got {timestamp!r}")
        if watermark is None:
            watermark = BoundedOutOfOrderness(0)
        if not isinstance(watermark, BoundedOutOfOrderness):
            raise FlowDefinitionError(f"{label}: watermark= must be a BoundedOutOfOrderness, got {watermark!r}")
        fields = source.fields()
        if isinstance(timestamp, str) and fields is not None:
            if timestamp not in fields:
                raise FlowDefinitionError(
                    f"{label}: timestamp field {timestamp!r} is not a field of the source "
                    f"(it has {sorted(fields)}); pass timestamp= one of those or a callable"
                )
            dtype = fields[timestamp]
            if dtype is not None and getattr(dtype, "kind", "i") not in "iu":
                raise FlowDefinitionError(
                    f"{label}: timestamp field {timestamp!r} has dtype {dtype}, but timestamps are int "
                    f"milliseconds; convert the column to int64 (e.g. ms since the epoch)"
                )
        step = self._add("source", (), name, source=source, timestamp=timestamp, watermark=watermark)
        return Stream(self, step.name, fields)

    def dead_letters(self, *, name: str | None = None) -> Stream:
        """Dead letters of every step that has no ``dead_letters()`` output of its own.

        Records are `engine.errors.DeadLetter`. Without any dead-letter output a bad record fails the
        job instead (`JobFailedError` naming the step, the field and the value).
        """
        key = ("*", "dead_letters")
        if key not in self._side_outputs:
            step = self._add("dead_letters", (), name)
            self._side_outputs[key] = step.name
        return Stream(self, self._side_outputs[key], None)

    # ---- inspecting and running ----------------------------------------------------------------------

    def validate(self) -> None:
        """Check the whole graph; raise `FlowDefinitionError` saying what to fix."""
        if self._pending_windows:
            names = ", ".join(sorted(self._pending_windows))
            raise FlowDefinitionError(
                f"window step(s) {names} have no aggregation; call .aggregate(...) or .reduce(fn, initial) on them"
            )
        if not any(step.kind == "sink" for step in self._steps.values()):
            raise FlowDefinitionError(
                f"flow {self.name!r} has no sink, so it would compute nothing anyone sees; "
                f"end a stream with .sink(...) (e.g. connectors.memory.CollectSink())"
            )
        # Steps can only reference steps that existed when they were added, so the graph is acyclic by
        # construction; this check guards hand-edited or future graph sources all the same.
        state: dict[str, int] = {}

        def visit(name: str, path: tuple[str, ...]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                raise FlowDefinitionError(f"flow {self.name!r} has a cycle: {' -> '.join(path + (name,))}")
            if name not in self._steps:
                raise FlowDefinitionError(f"step {path[-1]!r} reads from unknown step {name!r}")
            state[name] = 1
            for upstream in self._steps[name].inputs:
                visit(upstream, path + (name,))
            state[name] = 2

        for name in self._steps:
            visit(name, ())

        # A dead-letter stream that reaches no sink would drop bad records silently: refuse it.
        consumers: dict[str, list[str]] = {name: [] for name in self._steps}
        for step in self._steps.values():
            for upstream in step.inputs:
                consumers[upstream].append(step.name)

        def reaches_sink(name: str) -> bool:
            return self._steps[name].kind == "sink" or any(reaches_sink(c) for c in consumers[name])

        for step in self._steps.values():
            if step.kind == "dead_letters" and not reaches_sink(step.name):
                source = f"of {step.inputs[0]!r}" if step.inputs else "of the flow"
                raise FlowDefinitionError(
                    f"the dead-letter stream {step.name!r} ({source}) reaches no sink, so bad records would be "
                    f"dropped silently; add .sink(...) to it (e.g. connectors.memory.CollectSink())"
                )

    def describe(self) -> str:
        """The compiled plan as text: chains of fused operators, their settings and where outputs go."""
        from engine.runtime.plan import compile_flow

        return compile_flow(self).describe()

    def run(
        self,
        *,
        batch_size: int | None = None,
        queue_size: int = 4,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_interval: float | None = None,
        fresh: bool = False,
        from_savepoint: str | os.PathLike | None = None,
        worker_id: str | None = None,
        checkpointer: Any = None,
        tolerable_failed_checkpoints: int = 0,
    ) -> None:
        """Run the flow until every source ends; blocking. See `run_async` for the options."""
        from engine.runtime.executor import run_blocking

        run_blocking(
            self, batch_size=batch_size, queue_size=queue_size, checkpoint_dir=checkpoint_dir,
            checkpoint_interval=checkpoint_interval, fresh=fresh, from_savepoint=from_savepoint,
            worker_id=worker_id, checkpointer=checkpointer, tolerable_failed_checkpoints=tolerable_failed_checkpoints,
        )

    async def run_async(
        self,
        *,
        batch_size: int | None = None,
        queue_size: int = 4,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_interval: float | None = None,
        fresh: bool = False,
        from_savepoint: str | os.PathLike | None = None,
        worker_id: str | None = None,
        checkpointer: Any = None,
        tolerable_failed_checkpoints: int = 0,
    ) -> None:
        """Run the flow in the current event loop until every source ends.

        ``batch_size`` overrides every source's batch size; ``queue_size`` bounds the batches queued
        between the sources and the operators (backpressure). A bad record without a dead-letter output
        raises `JobFailedError`; cancelling stops the sources, aborts (does not flush) the sinks and
        closes every connector.

        Checkpoints: with ``checkpoint_dir`` the job restores the latest checkpoint of this job found
        there (unless ``fresh``) or the savepoint file ``from_savepoint``, checkpoints every
        ``checkpoint_interval`` seconds of wall clock (at batch boundaries), on request (`checkpoint`,
        `savepoint`) and when the input ends. ``worker_id`` (scale-out): this process is one of several
        workers running the job with the same Kafka ``group_id`` and ``checkpoint_dir``; keyed state is
        kept per input partition and follows a partition to whichever worker is assigned it (see
        `engine.state.coordinator.CheckpointCoordinator`). Checkpoints are written in the background
        while the job goes on (at most one at a time; sinks commit and Kafka offsets are committed once
        one is durable); a failed write fails the job unless ``tolerable_failed_checkpoints`` (Flink's
        setting of that name, default 0) allows that many failures in a row. ``checkpointer`` is the
        lower-level seam: an object with
        ``async restore(execution)``, ``async maybe_checkpoint(execution)`` and optionally
        ``async finish(execution)`` and ``async close(execution)`` (see `engine.runtime.executor.Execution`).
        """
        from engine.runtime.executor import Execution

        if checkpoint_dir is not None:
            if checkpointer is not None:
                raise FlowDefinitionError("pass either checkpoint_dir= or checkpointer=, not both")
            from engine.state.coordinator import CheckpointCoordinator

            try:
                checkpointer = CheckpointCoordinator(
                    checkpoint_dir, interval=checkpoint_interval, fresh=fresh, start_from=from_savepoint,
                    worker_id=worker_id, tolerable_failed_checkpoints=tolerable_failed_checkpoints,
                )
            except ValueError as exc:
                raise FlowDefinitionError(f"flow {self.name!r}: {exc}") from exc
        elif (checkpoint_interval is not None or fresh or from_savepoint is not None or worker_id is not None
              or tolerable_failed_checkpoints != 0):
            raise FlowDefinitionError(
                "checkpoint_interval=, fresh=, from_savepoint=, worker_id= and tolerable_failed_checkpoints= "
                "need checkpoint_dir= (where checkpoints are kept)"
            )
        execution = Execution(self, batch_size=batch_size, queue_size=queue_size, checkpointer=checkpointer)
        self._last_run = execution
        await execution.run()

    def _running_checkpointer(self, what: str) -> Any:
        execution = self._last_run
        if execution is None or execution.state != "running":
            raise CheckpointError(f"flow {self.name!r} is not running; {what} needs a running flow (run_async)")
        if execution.checkpointer is None or not hasattr(execution.checkpointer, "request"):
            raise CheckpointError(
                f"flow {self.name!r} runs without checkpoints; start it with run_async(checkpoint_dir=...) to {what}"
            )
        return execution.checkpointer

    async def checkpoint(self) -> int:
        """Take a checkpoint at the next batch boundary of the running flow; returns its id."""
        return await self._running_checkpointer("a checkpoint").request()

    async def savepoint(self, path: str | os.PathLike) -> Any:
        """Write a savepoint (a checkpoint kept until deleted) to ``path`` at the next batch boundary of
        the running flow; returns its path. Start a job from it with ``run(from_savepoint=path, ...)``."""
        return await self._running_checkpointer("a savepoint").request_savepoint(path)

    def metrics(self) -> dict[str, dict[str, Any]]:
        """Per-step counters of the current or last run: ``records_in``, ``records_out``,
        ``late_records``, ``watermark``, ``batches``, ``errors`` (plus connector specifics).
        Empty before the first run."""
        return {} if self._last_run is None else self._last_run.metrics.snapshot()

    def __repr__(self) -> str:
        return f"<Dataflow {self.name!r}: {len(self._steps)} steps>"


class Stream:
    """A stream of records produced by one step of a `Dataflow`."""

    __slots__ = ("_flow", "_step", "_fields")

    def __init__(self, flow: Dataflow, step: str, fields: Fields | None) -> None:
        self._flow = flow
        self._step = step
        self._fields = None if fields is None else types.MappingProxyType(dict(fields))

    @property
    def name(self) -> str:
        """The name of the step producing this stream."""
        return self._step

    @property
    def flow(self) -> Dataflow:
        return self._flow

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._step!r} of {self._flow.name!r}>"

    # ---- helpers ----

    def _check_field(self, field_name: str, role: str, step_kind: str, numeric: bool = False) -> None:
        if self._fields is None:
            return
        if field_name not in self._fields:
            raise FlowDefinitionError(
                f"{step_kind} after {self._step!r}: {role} field {field_name!r} is not a field of the stream "
                f"(it has {sorted(self._fields)}); use one of those or pass a callable"
            )
        dtype = self._fields[field_name]
        if numeric and dtype is not None and getattr(dtype, "kind", "f") not in "iuf":
            raise FlowDefinitionError(
                f"{step_kind} after {self._step!r}: {role} field {field_name!r} has dtype {dtype}; "
                f"aggregations need numbers (use .reduce(fn, initial) for other values)"
            )

    def _callable(self, fn: Any, what: str) -> None:
        if not callable(fn):
            raise FlowDefinitionError(f"{what} after {self._step!r} needs a callable, got {fn!r}")

    # ---- operators ----

    def map(self, fn: Callable[[Any], Any], *, name: str | None = None) -> Stream:
        """Each record ``r`` becomes ``fn(r)`` (same event timestamp)."""
        self._callable(fn, "map")
        step = self._flow._add("map", (self._step,), name, fn=fn)
        return Stream(self._flow, step.name, None)

    def flat_map(self, fn: Callable[[Any], Iterable[Any]], *, name: str | None = None) -> Stream:
        """Each record ``r`` becomes the records of ``fn(r)`` (an iterable; same event timestamp)."""
        self._callable(fn, "flat_map")
        step = self._flow._add("flat_map", (self._step,), name, fn=fn)
        return Stream(self._flow, step.name, None)

    def filter(self, fn: Callable[[Any], bool], *, name: str | None = None) -> Stream:
        """Keep the records for which ``fn(r)`` is true. Filtered-out records still moved the watermark."""
        self._callable(fn, "filter")
        step = self._flow._add("filter", (self._step,), name, fn=fn)
        return type(self)._derived(self, step.name)

    def validate(self, contract: Any, *, name: str | None = None) -> Stream:
        """Check every record against a data contract (`engine.contracts.DataContract`, or the path of a
        contract file). Valid records continue in the contract's validated form; invalid ones go to this
        step's ``dead_letters()`` with each violation's field path and value (without a dead-letter
        output, the first one fails the job)."""
        from engine.contracts import DataContract, load_contract

        if isinstance(contract, (str, os.PathLike)):
            contract = load_contract(contract)
        if not isinstance(contract, DataContract):
            raise FlowDefinitionError(
                f"validate() needs an engine.contracts.DataContract or a contract file path, got {contract!r}"
            )
        step = self._flow._add("validate", (self._step,), name, contract=contract)
        return Stream(self._flow, step.name, None)

    @classmethod
    def _derived(cls, parent: Stream, step: str) -> Stream:
        return Stream(parent._flow, step, parent._fields)

    def key_by(self, key: str | Callable[[Any], Any], *, name: str | None = None) -> KeyedStream:
        """Key the stream by a field (read as a column) or a callable ``record -> hashable`` (side-effect
        free, like a timestamp callable)."""
        if isinstance(key, str) and key:
            self._check_field(key, "key", "key_by")
        elif not callable(key):
            raise FlowDefinitionError(f"key_by after {self._step!r} needs a field name or a callable, got {key!r}")
        step = self._flow._add("key_by", (self._step,), name, key=key)
        return KeyedStream(self._flow, step.name, self._fields)

    def union(self, *others: Stream, name: str | None = None) -> Stream:
        """Merge this stream with ``others`` (unkeyed; key again after it). The union's watermark is the
        minimum over its inputs; each record keeps its timestamp."""
        if not others:
            raise FlowDefinitionError(f"union after {self._step!r} needs at least one other stream")
        for other in others:
            if not isinstance(other, Stream):
                raise FlowDefinitionError(f"union after {self._step!r}: {other!r} is not a Stream")
            if other._flow is not self._flow:
                raise FlowDefinitionError(
                    f"union after {self._step!r}: stream {other._step!r} belongs to flow {other._flow.name!r}; "
                    f"streams of different flows cannot be combined"
                )
        inputs = (self._step,) + tuple(o._step for o in others)
        if len(set(inputs)) != len(inputs):
            raise FlowDefinitionError(f"union after {self._step!r} lists the same stream twice: {inputs}")
        step = self._flow._add("union", inputs, name)
        fields = None
        known = [s._fields for s in (self,) + others]
        if all(f is not None for f in known):
            common = set(known[0]).intersection(*known[1:])  # type: ignore[arg-type]
            fields = {f: known[0][f] for f in common}  # type: ignore[index]
        return Stream(self._flow, step.name, fields)

    def sink(self, sink: Sink, *, name: str | None = None) -> None:
        """Write the stream to ``sink`` (e.g. ``connectors.memory.CollectSink()``)."""
        if not isinstance(sink, Sink):
            raise FlowDefinitionError(f"sink after {self._step!r} needs an engine.io.Sink, got {sink!r}")
        for step in self._flow._steps.values():
            if step.kind == "sink" and step.params["sink"] is sink:
                raise FlowDefinitionError(
                    f"sink {sink.describe()} is already used by step {step.name!r}; "
                    f"union the streams first or use one sink object per output"
                )
        self._flow._add("sink", (self._step,), name, sink=sink)

    def dead_letters(self, *, name: str | None = None) -> Stream:
        """Records this step could not process, as `engine.errors.DeadLetter` (step, error, record,
        field, value). With it attached, a bad record goes there and the job continues."""
        key = (self._step, "dead_letters")
        if key not in self._flow._side_outputs:
            if self._flow._steps[self._step].kind == "dead_letters":
                raise FlowDefinitionError(f"{self._step!r} is already a dead-letter stream")
            step = self._flow._add("dead_letters", (self._step,), name)
            self._flow._side_outputs[key] = step.name
        return Stream(self._flow, self._flow._side_outputs[key], None)

    def window(self, spec: Any, allowed_lateness: Any = 0, *, name: str | None = None) -> WindowedStream:
        raise FlowDefinitionError(
            f"window after {self._step!r} needs a keyed stream; call .key_by(field or callable) first"
        )

    def interval_join(self, other: Any, lower: Any, upper: Any, **kwargs: Any) -> Stream:
        raise FlowDefinitionError(
            f"interval_join after {self._step!r} needs keyed streams on both sides; call .key_by(...) on "
            f"this stream and on the other one first"
        )


class KeyedStream(Stream):
    """A stream whose records have a key (from ``key_by``); windows and joins need one."""

    __slots__ = ()

    @classmethod
    def _derived(cls, parent: Stream, step: str) -> Stream:
        return KeyedStream(parent._flow, step, parent._fields)

    def window(self, spec: Any, allowed_lateness: Any = 0, *, name: str | None = None) -> WindowedStream:
        """Group the keyed stream into ``spec`` windows (`Tumbling`, `Sliding` or `Session`).

        A record is late for a window once the watermark in force before it is ``>= end - 1 +
        allowed_lateness``; it is added to every window it is not late for. Windows fire when the
        watermark reaches ``end - 1`` and fire again, updated, for records added within the lateness.
        Follow with ``.aggregate(...)`` or ``.reduce(fn, initial)``.
        """
        if not isinstance(spec, (Tumbling, Sliding, Session)):
            raise FlowDefinitionError(
                f"window after {self._step!r} needs Tumbling(size), Sliding(size, slide) or Session(gap), got {spec!r}"
            )
        lateness = duration_ms(f"window after {self._step!r}: allowed_lateness", allowed_lateness)
        step_name = self._flow._new_name("window", name)
        self._flow._pending_windows.add(step_name)
        return WindowedStream(self, step_name, spec, lateness)

    def interval_join(
        self,
        other: Any,
        lower: Any,
        upper: Any,
        combine: Callable[[Any, Any], Any] | None = None,
        *,
        lower_exclusive: bool = False,
        upper_exclusive: bool = False,
        name: str | None = None,
    ) -> JoinedStream:
        """Join with ``other`` (keyed): emit ``(left, right)`` for each pair with equal keys and
        ``left.ts + lower <= right.ts <= left.ts + upper`` (bounds exclusive by flag), or
        ``combine(left, right)`` when given. The pair's timestamp is ``max(left.ts, right.ts)``. A record
        with ``ts <= W`` (the join's watermark, min over both inputs) is late: dropped and counted in
        the ``late_records`` metric. State is purged as the watermark passes ``ts + upper`` (left) and
        ``ts - lower`` (right)."""
        if not isinstance(other, KeyedStream):
            raise FlowDefinitionError(
                f"interval_join after {self._step!r}: the other stream must be keyed too; "
                f"call .key_by(...) on it first (got {other!r})"
            )
        if other._flow is not self._flow:
            raise FlowDefinitionError(
                f"interval_join after {self._step!r}: stream {other._step!r} belongs to another flow"
            )
        if other._step == self._step:
            raise FlowDefinitionError(f"interval_join after {self._step!r}: cannot join a stream with itself")
        label = f"interval_join after {self._step!r}"
        lo = duration_ms(f"{label}: lower", lower, allow_negative=True)
        hi = duration_ms(f"{label}: upper", upper, allow_negative=True)
        if lo > hi:
            raise FlowDefinitionError(f"{label}: lower ({lo}) must be <= upper ({hi})")
        if combine is not None and not callable(combine):
            raise FlowDefinitionError(f"{label}: combine must be a callable (left, right) -> record, got {combine!r}")
        step = self._flow._add(
            "interval_join", (self._step, other._step), name, lower=lo, upper=hi, combine=combine,
            lower_exclusive=bool(lower_exclusive), upper_exclusive=bool(upper_exclusive),
        )
        return JoinedStream(self._flow, step.name, None)


class JoinedStream(Stream):
    """The pairs of an interval join; ``late()`` gives the input records that were too late to join."""

    __slots__ = ()

    def late(self, *, name: str | None = None) -> Stream:
        """Records of either input with ``ts <= W`` on arrival, unchanged, once each."""
        return _late_of(self._flow, self._step, None, name)


class WindowedStream:
    """A keyed stream grouped into windows; finish it with `aggregate` or `reduce`."""

    __slots__ = ("_keyed", "_name", "_spec", "_lateness", "_done")

    def __init__(self, keyed: KeyedStream, name: str, spec: Any, lateness: int) -> None:
        self._keyed = keyed
        self._name = name
        self._spec = spec
        self._lateness = lateness
        self._done = False

    @property
    def name(self) -> str:
        return self._name

    def _finish(self, result_fields: tuple[str, ...], **params: Any) -> WindowResultStream:
        flow = self._keyed._flow
        if self._done:
            raise FlowDefinitionError(f"window step {self._name!r} already has its aggregation")
        flow._pending_windows.discard(self._name)
        flow._add(
            "window", (self._keyed._step,), self._name, spec=self._spec, allowed_lateness=self._lateness,
            input_fields=self._keyed._fields, **params,
        )
        self._done = True
        return WindowResultStream(flow, self._name, {n: None for n in WINDOW_RESULT_FIELDS + result_fields})

    def aggregate(self, **aggregations: Aggregation) -> WindowResultStream:
        """Aggregate each window: results are dicts ``{"key", "start", "end", <name>: value, ...}``."""
        if not aggregations:
            raise FlowDefinitionError(
                f"aggregate on window {self._name!r} needs at least one named aggregation, e.g. count=agg.count()"
            )
        for out_name, aggregation in aggregations.items():
            if out_name in WINDOW_RESULT_FIELDS:
                raise FlowDefinitionError(
                    f"aggregate on window {self._name!r}: {out_name!r} is a reserved result field "
                    f"({', '.join(WINDOW_RESULT_FIELDS)}); choose another name"
                )
            if not isinstance(aggregation, Aggregation):
                raise FlowDefinitionError(
                    f"aggregate on window {self._name!r}: {out_name}= must be agg.count()/sum/min/max/mean, got {aggregation!r}"
                )
            if isinstance(aggregation.field, str):
                self._keyed._check_field(aggregation.field, f"{out_name}= {aggregation.kind}", f"window {self._name!r}", numeric=True)
        return self._finish(tuple(aggregations), aggregations=dict(aggregations), reducer=None)

    def reduce(self, fn: Callable[[Any, Any], Any], initial: Any, *, field: str = "value") -> WindowResultStream:
        """Fold each window's records in arrival order: ``acc = fn(acc, record)`` from a deep copy of
        ``initial``. Results are dicts ``{"key", "start", "end", field: acc}``. The general, slower path
        for arbitrary Python values; same windowing and lateness semantics as `aggregate`."""
        if not callable(fn):
            raise FlowDefinitionError(f"reduce on window {self._name!r} needs a callable (acc, record) -> acc")
        if not isinstance(field, str) or not field or field in WINDOW_RESULT_FIELDS:
            raise FlowDefinitionError(f"reduce on window {self._name!r}: field= must be a new result field name, got {field!r}")
        return self._finish((field,), aggregations=None, reducer=(fn, initial, field))

    def late(self, *, name: str | None = None) -> Stream:
        """Records added to no window (late for all of theirs), unchanged, once each."""
        return _late_of(self._keyed._flow, self._name, self._keyed._fields, name)


class WindowResultStream(Stream):
    """The results of a window step; ``late()`` gives the records that were too late for it."""

    __slots__ = ()

    def late(self, *, name: str | None = None) -> Stream:
        """Records added to no window (late for all of theirs), unchanged, once each."""
        return _late_of(self._flow, self._step, self._flow._steps[self._step].params["input_fields"], name)


def _late_of(flow: Dataflow, window_step: str, fields: Fields | None, name: str | None) -> Stream:
    key = (window_step, "late")
    if key not in flow._side_outputs:
        step = flow._add("late", (window_step,), name)
        flow._side_outputs[key] = step.name
    return Stream(flow, flow._side_outputs[key], fields)
