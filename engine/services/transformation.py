"""The transformation service: registered Python transforms and lookup enrichment over batches.

The service runs an ordered list of steps over each batch of envelopes from ``input`` and publishes the
result to ``output``. A step is a small object with ``apply(batch) -> (out, failures)``; the built-in
ones are `MapStep` (a registered Python function over the payload) and `LookupStep` (enrichment from a
lookup table). This list is the seam to the dataflow runtime: each step maps one-to-one onto a
``Stream.map``/``flat_map``/``filter`` operator over envelopes, so a later version can compile a
service's steps into a dataflow instead of looping here; nothing else in the service changes.

Transform functions take the payload (a dict) and return a dict (the new payload), ``None`` (drop the
record: a filter), or a list of dicts (flat-map; the i-th output gets id ``<id>:<i>``). A function that
raises sends that record to the dead-letter channel (``<input>.dead-letter``) with the error; the rest
of the batch carries on. Register functions by name with `register_transform` (or the `transform`
decorator) or refer to them as ``"package.module:function"`` in the config.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import msgspec

from engine.errors import RecordError, ServiceError
from engine.services.base import Service
from engine.services.bus import EventBus, Subscription, dead_letter_channel
from engine.services.envelope import Envelope

logger = logging.getLogger(__name__)

TransformFn = Callable[[dict], Any]
_TRANSFORMS: dict[str, TransformFn] = {}


def register_transform(name: str, fn: TransformFn) -> TransformFn:
    """Register ``fn`` under ``name`` for use in configs (``transforms: [name]``)."""
    if not callable(fn):
        raise ServiceError(f"transform {name!r} must be callable, got {type(fn).__name__}")
    if name in _TRANSFORMS and _TRANSFORMS[name] is not fn:
        raise ServiceError(f"a different transform is already registered as {name!r}")
    _TRANSFORMS[name] = fn
    return fn


def transform(name: str | None = None):
    """Decorator form of `register_transform` (the name defaults to the function's name)."""

    def decorate(fn: TransformFn) -> TransformFn:
        return register_transform(name or fn.__name__, fn)

    return decorate


def resolve_transform(ref: str | TransformFn) -> tuple[str, TransformFn]:
    """A registered name, a ``"module:function"`` path, or a callable -> (name, function)."""
    if callable(ref):
        return getattr(ref, "__name__", repr(ref)), ref
    if ref in _TRANSFORMS:
        return ref, _TRANSFORMS[ref]
    if ":" in ref:
        module_name, _, attr = ref.partition(":")
        try:
            fn = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ServiceError(f"cannot load transform {ref!r}: {exc}") from None
        if not callable(fn):
            raise ServiceError(f"transform {ref!r} is not callable")
        return ref, fn
    known = ", ".join(sorted(_TRANSFORMS)) or "none"
    raise ServiceError(f"unknown transform {ref!r}: register it or use 'module:function' (registered: {known})")


class MapStep:
    """Applies a transform function to each payload (map, filter or flat-map; see the module docs)."""

    def __init__(self, name: str, fn: TransformFn):
        self.name, self.fn = name, fn

    def apply(self, batch: list[Envelope]) -> tuple[list[Envelope], list[tuple[Envelope, str]]]:
        out, failures = [], []
        for env in batch:
            try:
                result = self.fn(dict(env.payload))
            except Exception as exc:
                failures.append((env, str(RecordError(f"transform {self.name!r} raised {type(exc).__name__}: {exc}",
                                                      step=self.name))))
                continue
            if result is None:
                continue
            if isinstance(result, dict):
                out.append(env.with_payload(result))
            elif isinstance(result, list) and all(isinstance(r, dict) for r in result):
                out.extend(msgspec.structs.replace(env, id=f"{env.id}:{i}", payload=r) for i, r in enumerate(result))
            else:
                failures.append((env, f"transform {self.name!r} returned {type(result).__name__}; "
                                      "expected a dict, None or a list of dicts"))
        return out, failures


class Lookup(msgspec.Struct, kw_only=True, frozen=True):
    """Lookup enrichment config: ``payload[field]`` is looked up in ``table`` (inline mapping) or
    ``file`` (a JSON object of key -> record). The found record is merged into the payload (only
    ``fields`` of it when given), under ``into`` when set. ``on_missing``: keep the record unchanged,
    drop it, or send it to the dead-letter channel."""

    field: str
    table: dict[str, Any] | None = None
    file: str | None = None
    into: str | None = None
    fields: list[str] | None = None
    on_missing: Literal["keep", "drop", "dead_letter"] = "keep"


class LookupStep:
    def __init__(self, lookup: Lookup, table: Mapping[str, Any] | None = None):
        self.lookup = lookup
        self.name = f"lookup({lookup.field})"
        if table is None:
            if lookup.table is not None:
                table = lookup.table
            elif lookup.file is not None:
                try:
                    table = msgspec.json.decode(Path(lookup.file).read_bytes())
                except (OSError, msgspec.DecodeError) as exc:
                    raise ServiceError(f"{self.name}: cannot load lookup file {lookup.file!r}: {exc}") from None
                if not isinstance(table, dict):
                    raise ServiceError(f"{self.name}: lookup file {lookup.file!r} must hold a JSON object")
            else:
                raise ServiceError(f"{self.name}: give a table or a file")
        self.table = table

    def apply(self, batch: list[Envelope]) -> tuple[list[Envelope], list[tuple[Envelope, str]]]:
        lk = self.lookup
        out, failures = [], []
        for env in batch:
            key = env.payload.get(lk.field)
            found = self.table.get(str(key)) if key is not None else None
            if found is None:
                if lk.on_missing == "keep":
                    out.append(env)
                elif lk.on_missing == "dead_letter":
                    failures.append((env, f"{self.name}: no entry for {lk.field}={key!r}"))
                continue
            if lk.fields is not None and isinstance(found, dict):
                found = {k: found.get(k) for k in lk.fields}
            payload = dict(env.payload)
            if lk.into is not None:
                payload[lk.into] = found
            elif isinstance(found, dict):
                payload.update(found)
            else:
                failures.append((env, f"{self.name}: entry for {key!r} is not an object; set `into`"))
                continue
            out.append(env.with_payload(payload))
        return out, failures


class TransformationService(Service):
    kind = "transformation"

    def __init__(self, name: str, bus: EventBus, input: str, output: str, *, steps: list,
                 group: str | None = None, dead_letter: str | None = None, max_batch: int = 500,
                 dedup_window: int = 100_000, max_attempts: int = 3):
        super().__init__(name)
        for step in steps:
            if not hasattr(step, "apply"):
                raise ServiceError(f"transformation {name!r}: step {step!r} has no apply(batch)")
        self.bus, self.input, self.output = bus, input, output
        self.steps = list(steps)
        self.group = group or name
        self.dead_letter = dead_letter or dead_letter_channel(input)
        self.max_batch, self.dedup_window, self.max_attempts = max_batch, dedup_window, max_attempts
        self.subscription: Subscription | None = None
        self.failed_records = self.metrics.counter("engine_transformation_records_failed_total",
                                                   "Records sent to the dead-letter channel by a step.")
        self.dropped = self.metrics.counter("engine_transformation_records_filtered_total",
                                            "Records a step filtered out.")
        self.add_check("subscription", lambda: self.subscription is not None and self.subscription.running)

    async def on_start(self) -> None:
        self.subscription = await self.bus.subscribe(self.input, self.group, self.handle_batch,
                                                     max_batch=self.max_batch, dedup_window=self.dedup_window,
                                                     max_attempts=self.max_attempts)
        self.watch(self.subscription)

    async def on_stop(self, timeout: float) -> None:
        if self.subscription is not None:
            await self.subscription.stop(timeout)

    def run_steps(self, batch: list[Envelope]) -> tuple[list[Envelope], list[tuple[Envelope, str]]]:
        """Every step over ``batch`` in order: (output envelopes, (envelope, reason) failures)."""
        failures: list[tuple[Envelope, str]] = []
        for step in self.steps:
            before = len(batch)
            batch, failed = step.apply(batch)
            failures.extend(failed)
            if len(batch) + len(failed) < before:
                self.dropped.inc(before - len(batch) - len(failed))
        return batch, failures

    async def handle_batch(self, batch: list[Envelope]) -> None:
        with self.batch_latency.time():
            out, failures = self.run_steps(batch)
        self.records_in.inc(len(batch))
        self.throughput.mark(len(batch))
        if out:
            await self.bus.publish(self.output, out)
            self.records_out.inc(len(out))
        if failures:
            self.failed_records.inc(len(failures))
            for env, reason in failures:
                self._log(logging.WARNING, f"record {env.id!r} failed: {reason}", "transformation.failed")
            await self.bus.publish(self.dead_letter, [env.with_headers(error=reason, **{"error.service": self.name})
                                                      for env, reason in failures])

    def summary(self) -> str:
        steps = ", ".join(s.name for s in self.steps) or "no steps"
        return f"{steps}; {int(self.failed_records.value)} failed, {int(self.dropped.value)} filtered"

    def details(self) -> dict[str, Any]:
        return {"input": self.input, "output": self.output, "steps": [s.name for s in self.steps],
                "subscription": None if self.subscription is None else self.subscription.statistics()}
