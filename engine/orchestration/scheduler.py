"""The asyncio scheduler: creates DAG runs, decides task instances, runs them, persists everything.

One coroutine (the scheduling loop) owns all state; each task attempt runs in its own asyncio task and
reports back through an event queue. Per loop iteration the scheduler

1. applies finished attempts (success, skip, retry or failure) and propagates their states downstream
   through the trigger rules (incrementally: O(1) per edge, whatever the fan-in);
2. creates scheduled runs (cron/interval timetables, catchup) and dataset-triggered runs, and starts
   queued runs within ``max_active_runs``;
3. commits the metadata (group commit: one transaction for everything that changed);
4. starts ready task instances from the pools, highest priority first, within pool slots and the
   DAG's ``max_active_tasks``.

Because step 3 precedes step 4, a task's success is durable before any downstream task starts; after a
crash (even SIGKILL) a restarted scheduler resumes every running DAG run: succeeded task instances are
never run again, instances that were running are run again (a task whose side effect happened but
whose success was not yet committed therefore runs twice: make tasks idempotent, as in Airflow).

Retries release the pool slot while their delay runs. Delays and sensor intervals use the injectable
`Clock`; jitter uses the injectable ``random.Random``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
from collections import Counter, deque
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import msgspec

from engine.orchestration.clock import Clock
from engine.orchestration.dag import DAG
from engine.orchestration.exceptions import (
    DagDefinitionError,
    FailFastError,
    OrchestrationError,
    SensorTimeoutError,
    SkipTaskError,
    TaskFailedError,
    TaskTimeoutError,
    UnknownDagError,
)
from engine.orchestration.executors import AsyncioExecutor, Executor, ProcessPoolExecutor
from engine.orchestration.pools import Pool
from engine.orchestration.retry import retry_delay_seconds
from engine.orchestration.run_model import (
    ActiveRun,
    DagRunResult,
    Outcome,
    TaskInstance,
    TaskNode,
    describe_error,
    result_from_memory,
    result_from_store,
    short_repr,
)
from engine.orchestration.schedules.timetables import DataInterval, DatasetTimetable, RunInfo
from engine.orchestration.sensors import RescheduleSignal
from engine.orchestration.states import TERMINAL_STATES, RunState, TaskState
from engine.orchestration.store import (
    DEFAULT_DB,
    DagRunRecord,
    MetadataStore,
    TaskInstanceRecord,
    decode_json,
    encode_json,
    iso,
)
from engine.orchestration.task import DEFAULT_POOL, MappedTask, Task, TaskContext, resolve_xcom_args
from engine.orchestration.trigger_rules import Decision, evaluate

logger = logging.getLogger(__name__)

DEFAULT_POOL_SLOTS = 128
DEFAULT_MAX_RESULT_BYTES = 64 * 1024
_IDLE_FLUSH_SECONDS = 0.25  # how stale "running" states in the store may be while the loop idles
_COUNTER = {
    TaskState.SUCCESS: "success",
    TaskState.FAILED: "failed",
    TaskState.UPSTREAM_FAILED: "upstream_failed",
    TaskState.SKIPPED: "skipped",
    TaskState.REMOVED: "removed",
}
_DECISION_STATE = {Decision.SKIP: TaskState.SKIPPED, Decision.UPSTREAM_FAILED: TaskState.UPSTREAM_FAILED}


class Scheduler:
    """Runs DAGs: ``await scheduler.run_dag("etl")``, ``await scheduler.serve()``, backfills, resume.

    ``store``: a `MetadataStore`, a path, or ``None`` for the default file ``engine-orchestration.db``
    (use ``":memory:"`` for a throwaway store). ``executors`` maps names to `Executor` objects;
    ``"default"`` (in-process asyncio) and ``"process"`` (a process pool) always exist unless replaced.
    ``pools`` maps pool names to slot counts (``default_pool`` has ``default_pool_slots``).
    """

    def __init__(
        self,
        dags: Iterable[DAG] = (),
        *,
        store: MetadataStore | str | Path | None = None,
        executors: Mapping[str, Executor] | None = None,
        pools: Mapping[str, int] | Iterable[Pool] | None = None,
        default_pool_slots: int = DEFAULT_POOL_SLOTS,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
    ):
        self.store = store if isinstance(store, MetadataStore) else MetadataStore(store if store is not None else DEFAULT_DB)
        self.clock = clock or Clock()
        self.rng = rng or random.Random()
        self.max_result_bytes = max_result_bytes
        self.executors: dict[str, Executor] = {"default": AsyncioExecutor(), "process": ProcessPoolExecutor()}
        self.executors.update(executors or {})
        self.pools: dict[str, Pool] = {DEFAULT_POOL: Pool(DEFAULT_POOL, default_pool_slots)}
        if isinstance(pools, Mapping):
            pools = [Pool(name, slots) for name, slots in pools.items()]
        for pool in pools or ():
            self.pools[pool.name] = pool
        self.dags: dict[str, DAG] = {}
        self._dataset_consumers: dict[str, list[str]] = {}
        self._runs: dict[tuple[str, str], ActiveRun] = {}
        self._queued: dict[str, deque[DagRunRecord]] = {}
        self._active_runs: Counter[str] = Counter()
        self._running_tasks: Counter[str] = Counter()
        self._pool_used: Counter[str] = Counter()
        # pool -> DAG id -> heap of (-priority, sequence, instance). One heap per DAG, so a DAG at its
        # max_active_tasks limit is skipped in O(1) instead of popping and re-pushing its whole queue.
        self._pool_queue: dict[str, dict[str, list[tuple[int, int, TaskInstance]]]] = {name: {} for name in self.pools}
        self._seq = itertools.count()
        self._events: deque[tuple[str, TaskInstance, Any]] = deque()
        self._wake: asyncio.Event | None = None
        self._to_evaluate: deque[tuple[ActiveRun, TaskNode]] = deque()
        self._inflight: set[asyncio.Task[Any]] = set()
        self._next_time_run: dict[str, RunInfo | None] = {}
        self._datasets_dirty = True
        self._started = False
        self._looping = False
        self._poll_interval = 2.0
        self._flush_handle: asyncio.TimerHandle | None = None
        self._run_callbacks: dict[tuple[str, str], list[Callable[[DagRunResult], None]]] = {}
        self._hooks: list[Callable[[], bool]] = []
        self._iteration = asyncio.Event()
        self._finished_waiters: dict[tuple[str, str], list[asyncio.Future[DagRunResult]]] = {}
        for dag in dags:
            self.add_dag(dag)

    # ================================================================ configuration ============
    def add_dag(self, dag: DAG) -> None:
        """Register (and validate) a DAG; pools and executors its tasks name must exist."""
        dag.validate()
        if dag.dag_id in self.dags and self.dags[dag.dag_id] is not dag:
            raise DagDefinitionError(f"DAG id {dag.dag_id!r} is defined twice")
        for task in dag.task_dict.values():
            where = f"DAG {dag.dag_id!r}, task {task.task_id!r}"
            pool = self.pools.get(task.pool)
            if pool is None:
                raise DagDefinitionError(f"{where}: unknown pool {task.pool!r}; known pools: {sorted(self.pools)}")
            if task.pool_slots > pool.slots:
                raise DagDefinitionError(
                    f"{where}: needs {task.pool_slots} slots but pool {pool.name!r} has only {pool.slots}"
                )
            if task.executor not in self.executors:
                raise DagDefinitionError(f"{where}: unknown executor {task.executor!r}; known: {sorted(self.executors)}")
        self.dags[dag.dag_id] = dag
        if isinstance(dag.timetable, DatasetTimetable):
            for uri in dag.timetable.condition.uris():
                self._dataset_consumers.setdefault(uri, []).append(dag.dag_id)
        self._next_time_run.pop(dag.dag_id, None)

    def get_dag(self, dag_id: str) -> DAG:
        try:
            return self.dags[dag_id]
        except KeyError:
            raise UnknownDagError(f"unknown DAG {dag_id!r}; known: {sorted(self.dags)}") from None

    # ================================================================ public API ===============
    async def trigger(
        self,
        dag_id: str,
        *,
        logical_date: datetime | None = None,
        conf: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        run_type: str = "manual",
        data_interval: DataInterval | None = None,
    ) -> str:
        """Create a queued run and return its run id (it runs while the scheduler loop runs)."""
        dag = self.get_dag(dag_id)
        if logical_date is None:
            logical_date = self.clock.now()
        elif logical_date.tzinfo is None:
            logical_date = logical_date.replace(tzinfo=dag.timezone)
        interval = data_interval or dag.timetable.manual_interval(logical_date)
        return self._create_run(dag, logical_date, interval, run_type, dict(conf or {}), run_id)

    async def run_dag(self, dag: DAG | str, **trigger_options: Any) -> DagRunResult:
        """Trigger a run and drive the scheduler until that run has finished; return its outcome."""
        dag_id = dag.dag_id if isinstance(dag, DAG) else dag
        if isinstance(dag, DAG) and dag.dag_id not in self.dags:
            self.add_dag(dag)
        run_id = await self.trigger(dag_id, **trigger_options)
        return await self.wait_for_run(dag_id, run_id)

    async def wait_for_run(self, dag_id: str, run_id: str) -> DagRunResult:
        """Drive the scheduler until the given run has finished (resuming it if it was interrupted)."""
        fut: asyncio.Future[DagRunResult] = asyncio.get_running_loop().create_future()
        record = self.store.get_run(dag_id, run_id)
        if record is None:
            raise UnknownDagError(f"DAG {dag_id!r} has no run {run_id!r}")
        if record.state in (RunState.SUCCESS.value, RunState.FAILED.value):
            return result_from_store(self.store, record)
        self._finished_waiters.setdefault((dag_id, run_id), []).append(fut)
        await self._loop(lambda: fut.done())
        return fut.result()

    async def run_until_idle(self) -> None:
        """Run every queued and running DAG run (and the dataset-triggered runs they cause) to the end."""
        await self._loop(lambda: not self._runs and not any(self._queued.values()) and not self._datasets_dirty)

    async def serve(self, stop: asyncio.Event | None = None, *, poll_interval: float = 2.0) -> None:
        """The long-running scheduler: time schedules, datasets, queued runs; returns when ``stop`` is set.

        Every ``poll_interval`` seconds (wall clock) it also picks up runs queued and dataset events
        recorded by other processes (``engine dags trigger``) in the same metadata database.
        """
        stop = stop or asyncio.Event()
        self._poll_interval = poll_interval
        await self._loop(stop.is_set, serve=True, stop=stop)

    async def emit_dataset_event(self, uri: str, extra: Mapping[str, Any] | None = None) -> None:
        """Record an external update of a dataset (queued for every DAG scheduled on it)."""
        self.store.add_dataset_event(uri, self.clock.now(), dict(extra or {}), self._dataset_consumers.get(uri, ()))
        self.store.commit()
        self._datasets_dirty = True
        self._kick()

    async def clear(self, dag_id: str, run_id: str, *, only_failed: bool = False, task_ids: Iterable[str] | None = None) -> None:
        """Reset task instances of a finished run (and everything downstream of them) and queue it again.

        ``only_failed`` clears failed and upstream_failed instances; otherwise every instance (or those of
        ``task_ids``). Succeeded instances that are not cleared keep their results and do not run again.
        """
        self._clear_now(dag_id, run_id, only_failed=only_failed, task_ids=task_ids)

    def _on_run_finished(self, dag_id: str, run_id: str, callback: Callable[[DagRunResult], None]) -> None:
        """Call ``callback(result)`` synchronously when the run finishes (inside the loop iteration)."""
        self._run_callbacks.setdefault((dag_id, run_id), []).append(callback)

    def _clear_now(self, dag_id: str, run_id: str, *, only_failed: bool = False, task_ids: Iterable[str] | None = None) -> None:
        dag = self.get_dag(dag_id)
        record = self.store.get_run(dag_id, run_id)
        if record is None:
            raise UnknownDagError(f"DAG {dag_id!r} has no run {run_id!r}")
        if (dag_id, run_id) in self._runs:
            raise OrchestrationError(f"DAG {dag_id!r} run {run_id!r} is still running; clear it once it has finished")
        if task_ids is not None:
            roots = set(task_ids)
        elif only_failed:
            bad = {TaskState.FAILED.value, TaskState.UPSTREAM_FAILED.value}
            roots = {r.task_id for r in self.store.task_instances(dag_id, run_id) if r.state in bad}
        else:
            roots = set(dag.task_dict)
        cleared = set()
        stack = list(roots)
        while stack:
            tid = stack.pop()
            if tid in cleared:
                continue
            cleared.add(tid)
            stack.extend(dag.get_task(tid).downstream_task_ids)
        self.store.delete_task_instances(dag_id, run_id, sorted(cleared))
        self.store.update_run(dag_id, run_id, state=RunState.QUEUED.value, ended_at=None)
        self.store.commit()
        record.state = RunState.QUEUED.value
        self._queued.setdefault(dag_id, deque()).append(record)
        self._kick()

    async def close(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        for t in list(self._inflight):
            t.cancel()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        for executor in self.executors.values():
            await executor.shutdown()
        self.store.close()  # also releases the scheduler lock

    async def __aenter__(self) -> "Scheduler":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # ================================================================ the loop =================
    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _loop(
        self,
        done: Callable[[], bool],
        *,
        serve: bool = False,
        stop: asyncio.Event | None = None,
        hook: Callable[[], bool] | None = None,
    ) -> None:
        """Drive the scheduler until ``done()``; ``hook`` runs once per iteration (backfills feed runs).

        If another caller is already driving (e.g. `serve` is running), this one registers its hook
        and waits for ``done()`` instead of starting a second loop.
        """
        self._wake = self._wake or asyncio.Event()
        if self._looping:
            if hook is not None:
                self._hooks.append(hook)
                self._kick()
            try:
                while not done() and self._looping:
                    self._iteration.clear()
                    await self._iteration.wait()
            finally:
                if hook is not None:
                    self._hooks.remove(hook)
            if done():
                return
            # The driving loop ended before we were done: drive it ourselves.
        self._looping = True
        if hook is not None:
            self._hooks.append(hook)
        try:
            await self._run_loop(done, serve=serve, stop=stop)
        finally:
            self._looping = False
            if hook is not None:
                self._hooks.remove(hook)
            self._iteration.set()

    async def _run_loop(self, done: Callable[[], bool], *, serve: bool, stop: asyncio.Event | None) -> None:
        assert self._wake is not None
        if not self._started:
            self._acquire_lock()
            self._started = True
            self._resume()
        while True:
            for hook in list(self._hooks):
                hook()
            self._handle_events()
            if serve:
                self._schedule_time_runs()
            if self._datasets_dirty:
                self._schedule_dataset_runs()
            self._start_queued_runs()
            self._drain()
            # Group commit: everything decided above is durable before any task it enables starts.
            self.store.commit()
            self._dispatch()  # the queued/running states it writes are transient: flushed when idle
            self._iteration.set()
            if done():
                return
            if self._events or self._to_evaluate:
                continue
            if any([hook() for hook in list(self._hooks)]):
                continue  # a hook (a backfill) queued more work
            if not serve and not self._inflight:
                stuck = [f"{k[0]}/{k[1]}" for k in self._runs] + [f"{d} (queued)" for d, q in self._queued.items() if q]
                raise OrchestrationError(f"the scheduler cannot make progress; waiting runs: {stuck}")
            self._wake.clear()
            if self.store.dirty and self._flush_handle is None:
                # Nothing is waiting on these writes (task starts, retry states); flush them soon
                # rather than paying a second transaction per iteration on the hot path.
                self._flush_handle = asyncio.get_running_loop().call_later(_IDLE_FLUSH_SECONDS, self._idle_flush)
            if not serve and stop is None:
                await self._wake.wait()
                continue
            waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._wake.wait())]
            if stop is not None:
                waiters.append(asyncio.ensure_future(stop.wait()))
            timeout = self._seconds_to_next_time_run() if serve else None
            if timeout is not None:
                waiters.append(asyncio.ensure_future(self.clock.sleep(timeout)))
            poller = None
            if serve:
                # Other processes may queue runs or record dataset events: look again in wall-clock time.
                poller = asyncio.ensure_future(asyncio.sleep(self._poll_interval))
                waiters.append(poller)
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                if poller is not None and poller.done():
                    self._poll_store()
            finally:
                for w in waiters:
                    if not w.done():
                        w.cancel()
                await asyncio.gather(*waiters, return_exceptions=True)

    def _acquire_lock(self) -> None:
        self.store.acquire_scheduler_lock()

    def _release_lock(self) -> None:
        self.store.release_scheduler_lock()

    def _idle_flush(self) -> None:
        self._flush_handle = None
        self.store.commit(include_transient=True)

    def _post(self, kind: str, ti: TaskInstance, payload: Any = None) -> None:
        self._events.append((kind, ti, payload))
        self._kick()

    def _handle_events(self) -> None:
        while self._events:
            kind, ti, payload = self._events.popleft()
            if kind == "done":
                self._on_attempt_done(ti, payload)
            elif kind == "retry":
                self._enqueue(ti)

    # ================================================================ runs =====================
    def _create_run(
        self,
        dag: DAG,
        logical_date: datetime,
        interval: DataInterval | None,
        run_type: str,
        conf: dict[str, Any],
        run_id: str | None,
        triggering_events: list[dict[str, Any]] | None = None,
        consume_events: Iterable[int] = (),
    ) -> str:
        run_id = run_id or f"{run_type}__{iso(logical_date)}"
        record = DagRunRecord(
            dag_id=dag.dag_id, run_id=run_id, run_type=run_type, logical_date=logical_date,
            interval_start=interval.start if interval else None, interval_end=interval.end if interval else None,
            state=RunState.QUEUED.value, conf=conf, triggering_events=triggering_events or [],
            created_at=self.clock.now(),
        )
        self.store.create_run(record, consume_events=consume_events)
        self._queued.setdefault(dag.dag_id, deque()).append(record)
        logger.info("created %s run %s of DAG %s", run_type, run_id, dag.dag_id)
        self._kick()
        return run_id

    def _resume(self) -> None:
        """Pick up runs a previous scheduler left queued or running (after a crash or a restart)."""
        for record in self.store.list_runs(states=[RunState.RUNNING.value]):
            if (record.dag_id, record.run_id) in self._runs:
                continue
            if record.dag_id not in self.dags:
                logger.warning("run %s of unknown DAG %s left as it is", record.run_id, record.dag_id)
                continue
            logger.info("resuming run %s of DAG %s", record.run_id, record.dag_id)
            self._activate(record)
        known = {(r.dag_id, r.run_id) for q in self._queued.values() for r in q}
        for record in self.store.list_runs(states=[RunState.QUEUED.value]):
            if record.dag_id in self.dags and (record.dag_id, record.run_id) not in known:
                self._queued.setdefault(record.dag_id, deque()).append(record)

    def _poll_store(self) -> None:
        """Pick up runs queued by other processes and re-check the dataset queues."""
        known = {(r.dag_id, r.run_id) for q in self._queued.values() for r in q} | set(self._runs)
        for record in self.store.list_runs(states=[RunState.QUEUED.value]):
            key = (record.dag_id, record.run_id)
            if record.dag_id in self.dags and key not in known:
                logger.info("picked up queued run %s of DAG %s", record.run_id, record.dag_id)
                self._queued.setdefault(record.dag_id, deque()).append(record)
        self._datasets_dirty = True

    def _start_queued_runs(self) -> None:
        for dag_id, queue in self._queued.items():
            dag = self.dags[dag_id]
            while queue and self._active_runs[dag_id] < dag.max_active_runs:
                self._activate(queue.popleft())

    def _activate(self, record: DagRunRecord) -> None:
        dag = self.dags[record.dag_id]
        run = ActiveRun(record, dag)
        self._runs[(record.dag_id, record.run_id)] = run
        self._active_runs[record.dag_id] += 1
        now = self.clock.now()
        if record.state != RunState.RUNNING.value:
            record.state = RunState.RUNNING.value
            record.started_at = record.started_at or now
            self.store.update_run(record.dag_id, record.run_id, state=record.state, started_at=record.started_at)
        rows: dict[str, list[TaskInstanceRecord]] = {}
        for r in self.store.task_instances(record.dag_id, record.run_id):
            rows.setdefault(r.task_id, []).append(r)
        terminal: list[TaskInstance] = []
        pending: list[TaskInstance] = []
        for tid in dag.topological_order():
            node = run.nodes[tid]
            task = node.task
            existing = rows.get(tid)
            if existing:
                node.instances = []
                for r in sorted(existing, key=lambda r: r.map_index):
                    ti = TaskInstance(run, node, r.map_index)
                    ti.state = TaskState(r.state)
                    ti.try_number = r.try_number
                    ti.first_started_at, ti.started_at, ti.ended_at = r.first_started_at, r.started_at, r.ended_at
                    ti.result_json, ti.error = r.result, r.error
                    if r.result is not None:
                        ti.result = decode_json(r.result)
                    node.instances.append(ti)
                node.decided = any(ti.state is not TaskState.NONE for ti in node.instances) or (
                    task.is_mapped and node.instances[0].map_index >= 0
                )
                for ti in node.instances:
                    if ti.state in TERMINAL_STATES:
                        terminal.append(ti)
                    elif ti.state is not TaskState.NONE or node.decided:
                        pending.append(ti)
                if task.is_mapped and node.instances[0].map_index >= 0:
                    for ti in node.instances:
                        ti.mapped_kwargs = None  # recomputed from the (persisted) upstream results below
            elif not task.is_mapped:
                # No row until the instance is decided: "none" is what a missing row means on resume.
                node.instances = [TaskInstance(run, node, -1)]
        # Rebuild the upstream counters from the instances that already finished, without re-running them.
        for ti in terminal:
            self._count_finished(ti, evaluate_downstream=False)
        for node in run.nodes.values():
            if node.task.is_mapped and node.decided and node.instances and node.instances[0].map_index >= 0:
                self._compute_mapped_kwargs(run, node)
        for ti in pending:
            if ti.state is TaskState.RUNNING:
                # The scheduler died while this attempt ran: run it again without consuming a retry.
                self.store.record_try(record.dag_id, record.run_id, ti.node.task.task_id, ti.map_index, ti.try_number,
                                      "interrupted", ti.started_at, now, "scheduler stopped during the attempt")
                ti.try_number = max(0, ti.try_number - 1)
            self._enqueue(ti)
        for node in run.nodes.values():
            if not node.decided:
                self._to_evaluate.append((run, node))
        if run.unfinished == 0:
            self._finish_run(run)

    def _finish_run(self, run: ActiveRun) -> None:
        """Airflow's rule: the run fails if a leaf ends failed or upstream_failed.

        Teardown tasks do not count: the leaves are the non-teardown tasks with no non-teardown task
        downstream, so a clean-up task at the end cannot turn a failed run into a success.
        """
        record = run.record
        failed = False
        tasks = run.dag.task_dict
        for node in run.nodes.values():
            task = node.task
            if task.is_teardown or any(not tasks[d].is_teardown for d in task.downstream_task_ids):
                continue
            for ti in node.instances or ():
                if ti.state in (TaskState.FAILED, TaskState.UPSTREAM_FAILED):
                    failed = True
        record.state = (RunState.FAILED if failed else RunState.SUCCESS).value
        record.ended_at = self.clock.now()
        self.store.update_run(record.dag_id, record.run_id, state=record.state, ended_at=record.ended_at)
        del self._runs[(record.dag_id, record.run_id)]
        self._active_runs[record.dag_id] -= 1
        logger.info("run %s of DAG %s finished: %s", record.run_id, record.dag_id, record.state)
        result = result_from_memory(run)
        for fut in self._finished_waiters.pop((record.dag_id, record.run_id), []):
            if not fut.done():
                fut.set_result(result)
        for callback in self._run_callbacks.pop((record.dag_id, record.run_id), []):
            callback(result)
        dag_callback = run.dag.on_failure_callback if result.state is RunState.FAILED else run.dag.on_success_callback
        self._callback(dag_callback, result, f"DAG {record.dag_id!r} run {record.run_id!r}")

    # ================================================================ schedules ================
    def _schedule_time_runs(self) -> None:
        now = self.clock.now()
        for dag_id, dag in self.dags.items():
            tt = dag.timetable
            if isinstance(tt, DatasetTimetable):
                continue
            for _ in range(1000):  # catchup creates the missed runs; bounded per iteration to stay responsive
                if dag_id not in self._next_time_run:
                    last = self.store.last_interval(dag_id)
                    self._next_time_run[dag_id] = tt.next_run(
                        DataInterval(*last) if last else None, start_date=dag.start_date, end_date=dag.end_date,
                        catchup=dag.catchup, now=now,
                    )
                info = self._next_time_run[dag_id]
                if info is None or info.run_after > now:
                    break
                if self.store.run_for_logical_date(dag_id, info.logical_date) is None:
                    self._create_run(dag, info.logical_date, info.data_interval, "scheduled", {}, None)
                self.store.set_last_interval(dag_id, info.data_interval.start, info.data_interval.end)
                self.store.commit()
                del self._next_time_run[dag_id]

    def _seconds_to_next_time_run(self) -> float | None:
        now = self.clock.now()
        waits = [
            (info.run_after - now).total_seconds()
            for info in self._next_time_run.values()
            if info is not None
        ]
        return max(0.0, min(waits)) if waits else None

    def _schedule_dataset_runs(self) -> None:
        self._datasets_dirty = False
        for dag_id, dag in self.dags.items():
            tt = dag.timetable
            if not isinstance(tt, DatasetTimetable):
                continue
            events = self.store.queued_dataset_events(dag_id)
            if not events or not tt.condition.evaluate({e.uri for e in events}):
                continue
            now = self.clock.now()
            logical = now
            while self.store.run_for_logical_date(dag_id, logical) is not None:
                logical += timedelta(microseconds=1)
            # As in Airflow, a dataset-triggered run's data interval spans its triggering events.
            interval = DataInterval(datetime.fromisoformat(events[0].timestamp), datetime.fromisoformat(events[-1].timestamp))
            self._create_run(
                dag, logical, interval,
                "dataset", {}, None, triggering_events=[asdict(e) for e in events], consume_events=[e.id for e in events],
            )

    # ================================================================ decisions ================
    def _drain(self) -> None:
        queue = self._to_evaluate
        while queue:
            run, node = queue.popleft()
            if node.decided or (run.record.dag_id, run.record.run_id) not in self._runs:
                continue
            decision = evaluate(node.task.trigger_rule, node.counts)
            if decision is Decision.WAIT:
                continue
            node.decided = True
            if decision is Decision.RUN:
                if node.task.is_mapped:
                    self._expand(run, node)
                else:
                    assert node.instances is not None
                    self._enqueue(node.instances[0])
            else:
                state = _DECISION_STATE[decision]
                if node.instances is None:
                    node.instances = [TaskInstance(run, node, -1)]
                for ti in node.instances:
                    self._finish(ti, state)

    def _compute_mapped_kwargs(self, run: ActiveRun, node: TaskNode) -> list[dict[str, Any]] | str:
        """The per-instance keyword arguments of a mapped task, or an error message."""
        task = node.task
        assert isinstance(task, MappedTask)
        names, lists = [], []
        for name, value in task.expand_kwargs.items():
            resolved = resolve_xcom_args(value, run.result_of)
            if resolved is None:
                resolved = []  # the upstream did not succeed (a lenient trigger rule): nothing to map
            if not isinstance(resolved, (list, tuple)):
                return (f"DAG {run.dag.dag_id!r}, task {task.task_id!r}: cannot map over argument {name!r}: "
                        f"expected a list, got {type(resolved).__name__} {short_repr(resolved)}")
            names.append(name)
            lists.append(list(resolved))
        combos = [dict(zip(names, values)) for values in itertools.product(*lists)]
        if len(combos) > task.max_map_length:
            return (f"DAG {run.dag.dag_id!r}, task {task.task_id!r}: mapping would create {len(combos)} instances, "
                    f"more than max_map_length={task.max_map_length}")
        if node.instances and node.instances[0].map_index >= 0:
            for ti in node.instances:
                ti.mapped_kwargs = combos[ti.map_index] if ti.map_index < len(combos) else {}
        return combos

    def _expand(self, run: ActiveRun, node: TaskNode) -> None:
        combos = self._compute_mapped_kwargs(run, node)
        if isinstance(combos, str):
            ti = TaskInstance(run, node, -1)
            node.instances = [ti]
            ti.error = combos
            logger.error("%s", combos)
            self._finish(ti, TaskState.FAILED)
            return
        if not combos:
            node.instances = [TaskInstance(run, node, -1)]
            self._finish(node.instances[0], TaskState.SKIPPED)
            return
        node.instances = []
        for i, kwargs in enumerate(combos):
            ti = TaskInstance(run, node, i)
            ti.mapped_kwargs = kwargs
            node.instances.append(ti)
        for ti in node.instances:
            self._enqueue(ti)
            # The expansion itself is durable (not a transient state): a resumed run must see every
            # instance, including those that had not started yet.
            self.store.put_task_instance(ti)

    def _finish(self, ti: TaskInstance, state: TaskState) -> None:
        """Put an instance in a terminal state, persist it and propagate to the downstream tasks."""
        ti.state = state
        if ti.ended_at is None or state is not TaskState.SUCCESS:
            ti.ended_at = self.clock.now()
        self.store.put_task_instance(ti)
        self._count_finished(ti, evaluate_downstream=True)

    def _count_finished(self, ti: TaskInstance, *, evaluate_downstream: bool) -> None:
        node, run = ti.node, ti.run
        node.finished += 1
        complete = node.complete
        attr = _COUNTER[ti.state]
        for down_id in node.task.downstream_task_ids:
            down = run.nodes[down_id]
            c = down.counts
            setattr(c, attr, getattr(c, attr) + 1)
            if complete:
                c.waiting -= 1
            if evaluate_downstream and not down.decided:
                self._to_evaluate.append((run, down))
        if complete:
            run.unfinished -= 1
            if evaluate_downstream and run.unfinished == 0:
                self._finish_run(run)

    # ================================================================ pools and dispatch ======
    def _enqueue(self, ti: TaskInstance) -> None:
        ti.state = TaskState.SCHEDULED
        self.store.put_task_instance(ti, transient=True)
        task = ti.node.task
        priority = ti.run.priorities[task.task_id]
        per_dag = self._pool_queue[task.pool]
        heap = per_dag.get(ti.run.record.dag_id)
        if heap is None:
            heap = per_dag[ti.run.record.dag_id] = []
        heapq.heappush(heap, (-priority, next(self._seq), ti))

    def _dispatch(self) -> bool:
        """Start queued instances: per pool, highest priority first among DAGs below max_active_tasks."""
        started = False
        runs = self._runs
        for name, per_dag in self._pool_queue.items():
            if not per_dag:
                continue
            pool = self.pools[name]
            while True:
                free = pool.slots - self._pool_used[name]
                if free <= 0:
                    break
                best: tuple[int, int, TaskInstance] | None = None
                best_heap: list[tuple[int, int, TaskInstance]] | None = None
                for dag_id in list(per_dag):
                    heap = per_dag[dag_id]
                    while heap and (heap[0][2].run.record.dag_id, heap[0][2].run.record.run_id) not in runs:
                        heapq.heappop(heap)  # its run was finished or cleared meanwhile
                    if not heap:
                        del per_dag[dag_id]
                        continue
                    if self._running_tasks[dag_id] >= self.dags[dag_id].max_active_tasks:
                        continue
                    if best is None or heap[0] < best:
                        best, best_heap = heap[0], heap
                if best is None or best_heap is None:
                    break
                if best[2].node.task.pool_slots > free:
                    break  # strict priority: a bigger task is not starved by smaller ones behind it
                heapq.heappop(best_heap)
                self._start(best[2])
                started = True
        return started

    def _start(self, ti: TaskInstance) -> None:
        task = ti.node.task
        run = ti.run
        self._pool_used[task.pool] += task.pool_slots
        ti.slots_held = task.pool_slots
        self._running_tasks[run.record.dag_id] += 1
        now = self.clock.now()
        ti.try_number += 1
        ti.state = TaskState.RUNNING
        ti.started_at = now
        ti.ended_at = None
        ti.error = None
        if ti.first_started_at is None:
            ti.first_started_at = now
        self.store.put_task_instance(ti, transient=True)
        try:
            args, kwargs = task.call_arguments(run.result_of)
            if ti.mapped_kwargs:
                kwargs.update(ti.mapped_kwargs)
            if task._wants_context:
                kwargs["context"] = self._context(ti)
        except Exception as exc:  # noqa: BLE001 - reported as the attempt's failure
            self._post("done", ti, Outcome("failed", error=describe_error(exc)))
            return
        if task.fn is None:
            # A task without a callable is a no-op marker (Airflow's EmptyOperator): no coroutine needed.
            self._post("done", ti, Outcome("success"))
            return
        handle = asyncio.ensure_future(self._attempt(ti, args, kwargs))
        self._inflight.add(handle)
        handle.add_done_callback(self._inflight.discard)

    def _context(self, ti: TaskInstance) -> TaskContext:
        run = ti.run
        r = run.record
        task = ti.node.task
        params = dict(run.dag.params)
        params.update({k: v for k, v in r.conf.items() if k in params})
        return TaskContext(
            dag_id=r.dag_id, task_id=task.task_id, run_id=r.run_id, logical_date=r.logical_date,
            data_interval_start=r.interval_start, data_interval_end=r.interval_end, try_number=ti.try_number,
            map_index=ti.map_index, params=params, conf=dict(r.conf),
            upstream_results={u: run.result_of(u) for u in task.upstream_task_ids},
            triggering_dataset_events=list(r.triggering_events),
            metadata=self.store if isinstance(self.executors[task.executor], AsyncioExecutor) else None,
        )

    async def _attempt(self, ti: TaskInstance, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        task = ti.node.task
        executor = self.executors[task.executor]
        try:
            if task.is_sensor:
                value = await task.sense(  # type: ignore[attr-defined]
                    lambda: executor.run(task.fn, args, kwargs), clock=self.clock, first_started_at=ti.first_started_at,
                    execution_timeout=task.execution_timeout, pokes_before=ti.pokes,
                )
            elif task.execution_timeout is not None:
                try:
                    value = await asyncio.wait_for(executor.run(task.fn, args, kwargs), task.execution_timeout)
                except asyncio.TimeoutError:
                    raise TaskTimeoutError(
                        f"DAG {ti.run.dag.dag_id!r}, task {ti.key!r}: attempt {ti.try_number} exceeded "
                        f"execution_timeout of {task.execution_timeout:g}s"
                    ) from None
            else:
                value = await executor.run(task.fn, args, kwargs)
            outcome = Outcome("success", value)
        except RescheduleSignal as signal:
            outcome = Outcome("reschedule", signal.delay)
        except SkipTaskError as exc:
            outcome = Outcome("skipped", error=str(exc) or None)
        except (FailFastError, SensorTimeoutError) as exc:
            outcome = Outcome("failed", error=describe_error(exc), retry=False)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a task's failure is data for the scheduler
            outcome = Outcome("failed", error=describe_error(exc), retry=True)
        self._post("done", ti, outcome)

    def _release(self, ti: TaskInstance) -> None:
        task = ti.node.task
        self._pool_used[task.pool] -= ti.slots_held
        ti.slots_held = 0
        self._running_tasks[ti.run.record.dag_id] -= 1

    def _on_attempt_done(self, ti: TaskInstance, outcome: Outcome) -> None:
        self._release(ti)
        run, task = ti.run, ti.node.task
        if (run.record.dag_id, run.record.run_id) not in self._runs:
            return
        now = self.clock.now()
        where = f"DAG {run.dag.dag_id!r}, task {ti.key!r}"
        if outcome.kind == "success":
            try:
                ti.result_json = self._encode_result(outcome.value, where)
                follow = self._branch_targets(run, task, outcome.value, where) if task.is_branch else None
            except OrchestrationError as exc:
                outcome = Outcome("failed", error=str(exc), retry=False)
            else:
                ti.result = decode_json(ti.result_json)
                ti.ended_at = now
                self.store.record_try(run.record.dag_id, run.record.run_id, task.task_id, ti.map_index, ti.try_number,
                                      "success", ti.started_at, now, None)
                for ds in task.outlets:
                    self.store.add_dataset_event(
                        ds.uri, now, dict(ds.extra), self._dataset_consumers.get(ds.uri, ()),
                        source_dag_id=run.dag.dag_id, source_run_id=run.record.run_id, source_task_id=task.task_id,
                    )
                    self._datasets_dirty = True
                if follow is not None:
                    self._skip_unfollowed(run, task, follow)
                self._finish(ti, TaskState.SUCCESS)
                self._callback(task.on_success_callback, ti, where)
                return
        ti.error = outcome.error
        if outcome.kind == "reschedule":
            # Same try, slot freed until the next poke (Airflow's reschedule mode).
            ti.try_number -= 1
            ti.pokes += 1
            ti.state = TaskState.UP_FOR_RESCHEDULE
            self.store.put_task_instance(ti)
            handle = asyncio.ensure_future(self._retry_after(ti, outcome.value))
            self._inflight.add(handle)
            handle.add_done_callback(self._inflight.discard)
            return
        if outcome.kind == "skipped":
            self.store.record_try(run.record.dag_id, run.record.run_id, task.task_id, ti.map_index, ti.try_number,
                                  "skipped", ti.started_at, now, outcome.error)
            self._finish(ti, TaskState.SKIPPED)
            return
        self.store.record_try(run.record.dag_id, run.record.run_id, task.task_id, ti.map_index, ti.try_number,
                              "failed", ti.started_at, now, outcome.error)
        if outcome.retry and ti.try_number <= task.retries:
            delay = retry_delay_seconds(task, ti.try_number, self.rng)
            ti.state = TaskState.UP_FOR_RETRY
            ti.ended_at = now
            self.store.put_task_instance(ti)
            logger.warning("%s failed (attempt %d of %d), retrying in %.3gs: %s", where, ti.try_number,
                           task.retries + 1, delay, (outcome.error or "").splitlines()[0] if outcome.error else "")
            handle = asyncio.ensure_future(self._retry_after(ti, delay))
            self._inflight.add(handle)
            handle.add_done_callback(self._inflight.discard)
            self._callback(task.on_retry_callback, ti, where)
            return
        logger.error("%s failed (attempt %d): %s", where, ti.try_number, outcome.error)
        self._finish(ti, TaskState.FAILED)
        self._callback(task.on_failure_callback, ti, where)

    def _callback(self, fn: Callable[..., Any] | None, subject: Any, where: str) -> None:
        """Run a user callback in the background; its failure is logged, never fatal."""
        if fn is None:
            return
        if isinstance(subject, TaskInstance):
            arg: Any = self._context(subject)
            arg.error = subject.error
        else:
            arg = subject

        async def call() -> None:
            try:
                await self.executors["default"].run(fn, (arg,), {})
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a broken callback must not break the scheduler
                logger.exception("%s: callback %s raised", where, getattr(fn, "__name__", fn))

        handle = asyncio.ensure_future(call())
        self._inflight.add(handle)
        handle.add_done_callback(self._inflight.discard)

    async def _retry_after(self, ti: TaskInstance, delay: float) -> None:
        await self.clock.sleep(delay)
        self._post("retry", ti)

    def _encode_result(self, value: Any, where: str) -> str:
        try:
            text = encode_json(value)
        except (TypeError, msgspec.EncodeError) as exc:
            raise TaskFailedError(
                f"{where}: the return value {short_repr(value)} cannot be stored as JSON ({exc}); return small "
                "JSON-compatible values and pass large data through files or datasets"
            ) from None
        if len(text) > self.max_result_bytes:
            raise TaskFailedError(
                f"{where}: the return value is {len(text)} bytes as JSON, over the {self.max_result_bytes}-byte limit "
                "for task results; pass large data through files or datasets"
            )
        return text

    def _branch_targets(self, run: ActiveRun, task: Task, value: Any, where: str) -> set[str]:
        if value is None:
            ids: list[Any] = []
        elif isinstance(value, str):
            ids = [value]
        elif isinstance(value, (list, tuple, set)):
            ids = list(value)
        else:
            raise TaskFailedError(f"{where}: a branch task must return a task id or a list of ids, got {short_repr(value)}")
        follow: set[str] = set()
        for tid in ids:
            if isinstance(tid, str) and tid in task.downstream_task_ids:
                follow.add(tid)
            elif isinstance(tid, str) and tid in run.dag.task_groups:
                roots = {t.task_id for t in run.dag.task_groups[tid].roots()} & task.downstream_task_ids
                if not roots:
                    raise TaskFailedError(f"{where}: branch target group {tid!r} has no root directly downstream")
                follow |= roots
            else:
                raise TaskFailedError(
                    f"{where}: branch returned {tid!r}, which is not a direct downstream task; "
                    f"choose from {sorted(task.downstream_task_ids)}"
                )
        return follow

    def _skip_unfollowed(self, run: ActiveRun, task: Task, follow: set[str]) -> None:
        # Tasks reachable from a followed task are not skipped even if also directly downstream (a join).
        reachable: set[str] = set()
        stack = list(follow)
        while stack:
            tid = stack.pop()
            for d in run.dag.task_dict[tid].downstream_task_ids:
                if d not in reachable:
                    reachable.add(d)
                    stack.append(d)
        for tid in sorted(task.downstream_task_ids - follow - reachable):
            node = run.nodes[tid]
            if node.decided:
                continue
            node.decided = True
            if node.instances is None:
                node.instances = [TaskInstance(run, node, -1)]
            for ti in node.instances:
                self._finish(ti, TaskState.SKIPPED)


