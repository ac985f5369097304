"""The in-memory model of running DAG runs: task instances, per-task nodes, active runs, outcomes.

The scheduler owns these objects; `TaskInstance.row` is what the metadata store persists.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.orchestration.dag import DAG
from engine.orchestration.schedules.timetables import DataInterval
from engine.orchestration.states import RunState, TaskState
from engine.orchestration.store import DagRunRecord, MetadataStore, decode_json, iso
from engine.orchestration.task import Task
from engine.orchestration.trigger_rules import UpstreamCounts


@dataclass
class DagRunResult:
    """The outcome of one DAG run: its state, every task instance's state and the results."""

    dag_id: str
    run_id: str
    state: RunState
    logical_date: datetime
    data_interval: DataInterval | None
    states: dict[str, TaskState]  # "task" or "task[i]" for mapped instances
    results: dict[str, Any]  # task id -> result (a list ordered by map index for mapped tasks)
    errors: dict[str, str] = field(default_factory=dict)


class Outcome:
    __slots__ = ("kind", "value", "error", "retry")

    def __init__(self, kind: str, value: Any = None, error: str | None = None, retry: bool = False):
        self.kind = kind  # success | skipped | failed
        self.value = value
        self.error = error
        self.retry = retry


class TaskInstance:
    """One task instance of one run (the in-memory twin of a task_instances row)."""

    __slots__ = ("run", "node", "map_index", "state", "try_number", "result", "result_json", "error",
                 "first_started_at", "started_at", "ended_at", "mapped_kwargs", "slots_held", "pokes")

    def __init__(self, run: "ActiveRun", node: "TaskNode", map_index: int):
        self.run = run
        self.node = node
        self.map_index = map_index
        self.state = TaskState.NONE
        self.try_number = 0
        self.result: Any = None
        self.result_json: str | None = None
        self.error: str | None = None
        self.first_started_at: datetime | None = None
        self.started_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.mapped_kwargs: dict[str, Any] | None = None
        self.slots_held = 0
        self.pokes = 0  # pokes made so far by a reschedule-mode sensor (for its backoff)

    @property
    def key(self) -> str:
        tid = self.node.task.task_id
        return tid if self.map_index < 0 else f"{tid}[{self.map_index}]"

    def row(self) -> tuple[Any, ...]:
        """The task_instances row (what `MetadataStore.put_task_instance` writes at commit time)."""
        run = self.run.record
        return (run.dag_id, run.run_id, self.node.task.task_id, self.map_index, self.state.value, self.try_number,
                iso(self.first_started_at), iso(self.started_at), iso(self.ended_at), self.result_json, self.error)


class TaskNode:
    """One task of one run: its upstream counters, decision and instances."""

    __slots__ = ("task", "counts", "decided", "instances", "finished")

    def __init__(self, task: Task):
        self.task = task
        n = len(task.upstream_task_ids)
        self.counts = UpstreamCounts(total_tasks=n, waiting=n)
        self.decided = False
        self.instances: list[TaskInstance] | None = None
        self.finished = 0

    @property
    def complete(self) -> bool:
        return self.instances is not None and self.finished == len(self.instances)


class ActiveRun:
    """A run being executed: its record, DAG, nodes and outstanding work."""

    def __init__(self, record: DagRunRecord, dag: DAG):
        self.record = record
        self.dag = dag
        self.nodes: dict[str, TaskNode] = {tid: TaskNode(t) for tid, t in dag.task_dict.items()}
        self.unfinished = len(self.nodes)
        self.priorities = dag.priority_weights()

    def result_of(self, task_id: str) -> Any:
        node = self.nodes[task_id]
        if node.task.is_mapped:
            if not node.instances or node.instances[0].map_index < 0:
                return []
            return [ti.result if ti.state is TaskState.SUCCESS else None for ti in node.instances]
        if not node.instances:
            return None
        ti = node.instances[0]
        return ti.result if ti.state is TaskState.SUCCESS else None


def result_from_memory(run: ActiveRun) -> DagRunResult:
    """The outcome of a run that finished in this scheduler."""
    states: dict[str, TaskState] = {}
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for tid, node in run.nodes.items():
        for ti in node.instances or ():
            states[ti.key] = ti.state
            if ti.error:
                errors[ti.key] = ti.error
        results[tid] = run.result_of(tid)
    r = run.record
    interval = DataInterval(r.interval_start, r.interval_end) if r.interval_start and r.interval_end else None
    return DagRunResult(r.dag_id, r.run_id, RunState(r.state), r.logical_date, interval, states, results, errors)


def result_from_store(store: MetadataStore, record: DagRunRecord) -> DagRunResult:
    """The outcome of a finished run, read back from the metadata store."""
    states: dict[str, TaskState] = {}
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for r in store.task_instances(record.dag_id, record.run_id):
        key = r.task_id if r.map_index < 0 else f"{r.task_id}[{r.map_index}]"
        states[key] = TaskState(r.state)
        if r.error:
            errors[key] = r.error
        value = decode_json(r.result) if r.result is not None and r.state == TaskState.SUCCESS.value else None
        if r.map_index < 0:
            results[r.task_id] = value
        else:
            results.setdefault(r.task_id, []).append(value)
    interval = DataInterval(record.interval_start, record.interval_end) if record.interval_start and record.interval_end else None
    return DagRunResult(record.dag_id, record.run_id, RunState(record.state), record.logical_date, interval, states, results, errors)


def describe_error(exc: BaseException) -> str:
    """The error text kept for a failed attempt: type, message and the innermost frames."""
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    tb = traceback.extract_tb(exc.__traceback__)[-3:]
    if tb:
        text += "\n" + "".join(traceback.format_list(tb)).rstrip()
    return text


def short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
