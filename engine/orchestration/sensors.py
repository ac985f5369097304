"""Sensors: tasks that wait for a condition by poking it.

A sensor pokes (sync or async) every ``poke_interval`` seconds until the poke returns True (or a
`PokeResult` with ``done=True``, whose ``value`` becomes the task's result). With
``exponential_backoff`` the interval doubles after each poke, capped by ``max_wait``. ``timeout`` is
measured from the first poke of the *first* attempt, so retries do not extend it (Airflow's rule); when
it expires the sensor fails with `SensorTimeoutError` (not retried) or, with ``soft_fail=True``, ends
``skipped``. In ``mode="poke"`` (the default) a sensor holds its pool slot while it waits (the waits
are asyncio sleeps, not threads); in ``mode="reschedule"`` it frees the slot between pokes (state
``up_for_reschedule``) so long waits do not starve a small pool.

Built-ins: `FileSensor` (a path or glob exists), `KafkaSensor` (a topic's partitions reach an offset or
a record timestamp), `ExternalDagSensor` (another DAG's run, or one of its tasks, for the same logical
date or shifted by a delta), `DatasetSensor` (a dataset was updated). Custom: subclass `Sensor` and
override ``poke(self, context)``, or decorate a function with ``@task.sensor(poke_interval=...)``.
"""

from __future__ import annotations

import glob as globlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable

from engine.orchestration.clock import Clock
from engine.orchestration.datasets import Dataset
from engine.orchestration.exceptions import (
    DagDefinitionError,
    FailFastError,
    SensorTimeoutError,
    SkipTaskError,
    TaskTimeoutError,
)
from engine.orchestration.task import Task, TaskContext, _seconds


class RescheduleSignal(Exception):
    """Internal: a ``mode="reschedule"`` sensor asks to be run again after ``delay`` seconds."""

    def __init__(self, delay: float):
        super().__init__(f"reschedule in {delay:g}s")
        self.delay = delay


@dataclass
class PokeResult:
    """A poke's answer with a value: ``done`` says whether the condition holds; ``value`` is the result."""

    done: bool
    value: Any = None


class Sensor(Task):
    is_sensor = True

    def __init__(
        self,
        task_id: str,
        poke: Callable[..., Any] | None = None,
        *,
        poke_interval: float | timedelta = 60.0,
        timeout: float | timedelta = 7 * 24 * 3600.0,
        exponential_backoff: bool = False,
        max_wait: float | timedelta | None = None,
        soft_fail: bool = False,
        mode: str = "poke",
        **options: Any,
    ):
        super().__init__(task_id, poke if poke is not None else self.poke, **options)
        where = self._where
        if mode not in ("poke", "reschedule"):
            raise DagDefinitionError(f"{where}: sensor mode must be 'poke' or 'reschedule', got {mode!r}")
        self.mode = mode
        self.poke_interval = _seconds(poke_interval, "poke_interval", where) or 0.0
        self.timeout = _seconds(timeout, "timeout", where) or 0.0
        self.exponential_backoff = bool(exponential_backoff)
        self.max_wait = _seconds(max_wait, "max_wait", where)
        self.soft_fail = bool(soft_fail)

    def poke(self, context: TaskContext) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError(f"{type(self).__name__} must override poke() or be given a poke callable")

    def next_interval(self, pokes_done: int) -> float:
        """Seconds to wait after poke number ``pokes_done`` (1-based)."""
        interval = self.poke_interval
        if self.exponential_backoff:
            interval = interval * (2 ** min(pokes_done - 1, 62))
        if self.max_wait is not None:
            interval = min(interval, self.max_wait)
        return interval

    async def sense(
        self,
        poke: Callable[[], Awaitable[Any]],
        *,
        clock: Clock,
        first_started_at: datetime | None,
        execution_timeout: float | None = None,
        pokes_before: int = 0,
    ) -> Any:
        """Poke until done; the scheduler calls this for each attempt (``execution_timeout`` bounds one attempt).

        In ``reschedule`` mode one poke is made per call: a negative answer raises `RescheduleSignal`
        with the delay, and the scheduler frees the pool slot until then (``pokes_before`` carries the
        poke count across reschedules for the backoff).
        """
        started = first_started_at or clock.now()
        attempt_started = clock.now()
        pokes = pokes_before
        while True:
            answer = await poke()
            pokes += 1
            if isinstance(answer, PokeResult):
                if answer.done:
                    return answer.value
            elif answer:
                return None if answer is True else answer
            now = clock.now()
            remaining = self.timeout - (now - started).total_seconds()
            if remaining <= 0:
                message = (f"DAG {self.dag.dag_id!r}, sensor {self.task_id!r}: condition not met within the "
                           f"timeout of {self.timeout:g}s ({pokes} pokes in this attempt)")
                if self.soft_fail:
                    raise SkipTaskError(message + "; soft_fail: skipped")
                raise SensorTimeoutError(message)
            wait = min(self.next_interval(pokes), remaining)
            if self.mode == "reschedule":
                raise RescheduleSignal(wait)
            if execution_timeout is not None:
                left = execution_timeout - (now - attempt_started).total_seconds()
                if left <= 0:
                    raise TaskTimeoutError(
                        f"DAG {self.dag.dag_id!r}, sensor {self.task_id!r}: attempt exceeded execution_timeout "
                        f"of {execution_timeout:g}s"
                    )
                wait = min(wait, left)
            await clock.sleep(wait)


class PythonSensor(Sensor):
    """A sensor whose poke is a user function (``@task.sensor``); its arguments work as for any task."""


class FileSensor(Sensor):
    """Waits until ``path`` exists (a glob pattern such as ``"data/*.csv"`` is allowed); result: the matches."""

    def __init__(self, task_id: str, path: str | Path, **options: Any):
        self.path = str(path)
        super().__init__(task_id, **options)

    def poke(self, context: TaskContext) -> PokeResult:
        matches = sorted(globlib.glob(self.path)) if globlib.has_magic(self.path) else (
            [self.path] if Path(self.path).exists() else []
        )
        return PokeResult(bool(matches), matches)


class ExternalDagSensor(Sensor):
    """Waits for another DAG's run (or one of its tasks) with logical date ``own - execution_delta``.

    Succeeds when the state is in ``allowed_states`` (default success); fails at once, without
    retries, when it is in ``failed_states`` (default failed / upstream_failed). Reads the scheduler's
    metadata store, so it runs in-process.
    """

    def __init__(
        self,
        task_id: str,
        external_dag_id: str,
        external_task_id: str | None = None,
        *,
        execution_delta: timedelta | None = None,
        allowed_states: Iterable[str] = ("success",),
        failed_states: Iterable[str] = ("failed", "upstream_failed"),
        **options: Any,
    ):
        self.external_dag_id = external_dag_id
        self.external_task_id = external_task_id
        self.execution_delta = execution_delta or timedelta(0)
        self.allowed_states = {str(s) for s in allowed_states}
        self.failed_states = {str(s) for s in failed_states}
        super().__init__(task_id, **options)
        if options.get("executor", "default") != "default":
            raise DagDefinitionError(f"{self._where}: ExternalDagSensor reads the metadata store and runs in-process")

    async def poke(self, context: TaskContext) -> PokeResult:
        store = context.metadata
        if store is None or context.logical_date is None:
            raise FailFastError(f"{self._where}: needs the scheduler's metadata store and a logical date")
        target = context.logical_date - self.execution_delta
        run = store.run_for_logical_date(self.external_dag_id, target)
        if run is None:
            return PokeResult(False)
        if self.external_task_id is None:
            state = run.state
        else:
            states = [ti.state for ti in store.task_instances(run.dag_id, run.run_id) if ti.task_id == self.external_task_id]
            if not states:
                return PokeResult(False)
            state = "failed" if "failed" in states else ("success" if all(s == "success" for s in states) else states[0])
        what = f"DAG {self.external_dag_id!r}" + (f" task {self.external_task_id!r}" if self.external_task_id else "")
        if state in self.failed_states:
            raise FailFastError(f"{self._where}: {what} for {target.isoformat()} ended {state!r}")
        return PokeResult(state in self.allowed_states, {"run_id": run.run_id, "state": state})


class DatasetSensor(Sensor):
    """Waits for an update of ``dataset`` recorded at or after the run's logical date (or ``since``).

    Result: the matching events (as dicts). Reads the scheduler's metadata store, so it runs in-process.
    """

    def __init__(self, task_id: str, dataset: Dataset | str, *, since: datetime | None = None, **options: Any):
        self.dataset = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
        self.since = since
        super().__init__(task_id, **options)

    async def poke(self, context: TaskContext) -> PokeResult:
        store = context.metadata
        if store is None:
            raise FailFastError(f"{self._where}: needs the scheduler's metadata store")
        since = self.since or context.logical_date
        events = store.dataset_events(self.dataset.uri, since=since)
        return PokeResult(bool(events), [e.__dict__ for e in events])


class KafkaSensor(Sensor):
    """Waits until partitions of a Kafka topic reach ``min_offset`` records or a record ``timestamp``.

    - ``min_offset=N``: a partition is ready when its high-water mark (the offset of the *next* record)
      is at least N, i.e. records 0..N-1 have been written;
    - ``timestamp=T`` (epoch ms int or aware datetime): a partition is ready when its latest record's
      timestamp is at least T.

    ``partitions`` (default: all of the topic) and ``require`` (``"all"`` partitions, the default, or
    ``"any"``) select which must be ready. The high-water mark is taken from a fetch response rather than
    from a ListOffsets(latest) request, which some Kafka-protocol brokers answer wrongly. Result: a dict
    partition -> high-water mark (and last timestamp when ``timestamp`` is used).
    ``consumer_factory`` (tests) builds the aiokafka consumer.
    """

    def __init__(
        self,
        task_id: str,
        topic: str,
        *,
        bootstrap_servers: str | list[str] = "localhost:9092",
        min_offset: int | None = None,
        timestamp: int | datetime | None = None,
        partitions: Iterable[int] | None = None,
        require: str = "all",
        fetch_timeout: float = 2.0,
        consumer_factory: Callable[[], Any] | None = None,
        **options: Any,
    ):
        self.topic = topic
        self.bootstrap_servers = bootstrap_servers
        if (min_offset is None) == (timestamp is None):
            raise DagDefinitionError(f"KafkaSensor {task_id!r}: give exactly one of min_offset or timestamp")
        self.min_offset = min_offset
        if isinstance(timestamp, datetime):
            if timestamp.tzinfo is None:
                raise DagDefinitionError(f"KafkaSensor {task_id!r}: timestamp datetime must be timezone-aware")
            timestamp = int(timestamp.timestamp() * 1000)
        self.timestamp_ms = timestamp
        self.partitions = sorted(set(partitions)) if partitions is not None else None
        if require not in ("all", "any"):
            raise DagDefinitionError(f"KafkaSensor {task_id!r}: require must be 'all' or 'any', got {require!r}")
        self.require = require
        self.fetch_timeout = fetch_timeout
        self.consumer_factory = consumer_factory
        super().__init__(task_id, **options)

    def _consumer(self) -> Any:
        if self.consumer_factory is not None:
            return self.consumer_factory()
        from aiokafka import AIOKafkaConsumer

        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers, group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    async def poke(self, context: TaskContext) -> PokeResult:
        import asyncio

        from aiokafka import TopicPartition

        consumer = self._consumer()
        await consumer.start()
        try:
            available = consumer.partitions_for_topic(self.topic)
            if available is None:
                await consumer.topics()  # refresh metadata once
                available = consumer.partitions_for_topic(self.topic)
            if not available:
                return PokeResult(False)
            wanted = self.partitions if self.partitions is not None else sorted(available)
            missing = [p for p in wanted if p not in available]
            if missing:
                return PokeResult(False)
            tps = [TopicPartition(self.topic, p) for p in wanted]
            consumer.assign(tps)
            for tp in tps:
                consumer.seek(tp, 0)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.fetch_timeout
            highwater: dict[int, int] = {}
            while len(highwater) < len(tps) and loop.time() < deadline:
                await consumer.getmany(*tps, timeout_ms=200, max_records=1)
                for tp in tps:
                    hw = consumer.highwater(tp)
                    if hw is not None:
                        highwater[tp.partition] = hw
            ready: dict[int, bool] = {}
            info: dict[str, Any] = {"highwater": {str(p): hw for p, hw in highwater.items()}}
            if self.min_offset is not None:
                for p in wanted:
                    ready[p] = highwater.get(p, -1) >= self.min_offset
            else:
                last_ts: dict[str, int] = {}
                for tp in tps:
                    hw = highwater.get(tp.partition, 0)
                    if hw <= 0:
                        ready[tp.partition] = False
                        continue
                    consumer.seek(tp, hw - 1)
                    record = None
                    while record is None and loop.time() < deadline + self.fetch_timeout:
                        batch = await consumer.getmany(tp, timeout_ms=200, max_records=1)
                        for records in batch.values():
                            if records:
                                record = records[-1]
                    if record is not None:
                        last_ts[str(tp.partition)] = record.timestamp
                    ready[tp.partition] = record is not None and record.timestamp >= self.timestamp_ms
                info["last_timestamp"] = last_ts
            done = all(ready.values()) if self.require == "all" else any(ready.values())
            return PokeResult(bool(ready) and done, info)
        finally:
            await consumer.stop()


__all__ = [
    "DatasetSensor",
    "ExternalDagSensor",
    "FileSensor",
    "KafkaSensor",
    "PokeResult",
    "PythonSensor",
    "Sensor",
]
