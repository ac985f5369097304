"""Tasks: the nodes of a DAG, defined as objects (`Task`) or with the `task` decorator.

A task wraps a sync or async callable. Dependencies are declared with ``a >> b``, ``[a, b] >> c``,
``a << b``, by id (``upstream=["extract"]``), or implicitly by passing a task's output (an `XComArg`)
as an argument: ``load(transform(extract()))``. Return values are small values persisted as JSON
(msgspec) and handed to the downstream tasks that take them as arguments; a callable with a parameter
named ``context`` also receives the `TaskContext` (logical date, data interval, upstream results, ...).

Dynamic mapping: ``t.partial(factor=2).expand(x=upstream_output)`` creates one task instance per item of
the upstream's list (the cross product when several arguments are expanded), up to ``max_map_length``;
an empty list ends the mapped task in ``skipped``. Expanding over a literal that is not a list is refused
at definition time; over an upstream value that is not a list, the mapped task fails with an error that
names the DAG, the task and the value's type.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from engine.orchestration import _context
from engine.orchestration.datasets import Dataset
from engine.orchestration.exceptions import DagDefinitionError
from engine.orchestration.trigger_rules import TriggerRule

if TYPE_CHECKING:  # pragma: no cover
    from engine.orchestration.dag import DAG
    from engine.orchestration.task_group import TaskGroup

_TASK_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
DEFAULT_POOL = "default_pool"
DEFAULT_MAX_MAP_LENGTH = 1024


class WeightRule(str, Enum):
    """How a task's effective priority is computed from ``priority_weight`` (Airflow's rules)."""

    DOWNSTREAM = "downstream"  # own weight + the weights of every task downstream (default)
    UPSTREAM = "upstream"  # own weight + the weights of every task upstream
    ABSOLUTE = "absolute"  # own weight only

    def __str__(self) -> str:
        return self.value


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


UNSET: Any = _Unset()

# Options a task takes from its DAG's default_args when not given explicitly, with the fallbacks.
TASK_OPTION_DEFAULTS: dict[str, Any] = {
    "retries": 0,
    "retry_delay": timedelta(seconds=1),
    "retry_exponential_backoff": False,
    "max_retry_delay": None,
    "retry_jitter": 0.0,
    "execution_timeout": None,
    "trigger_rule": TriggerRule.ALL_SUCCESS,
    "pool": DEFAULT_POOL,
    "pool_slots": 1,
    "priority_weight": 1,
    "weight_rule": WeightRule.DOWNSTREAM,
    "executor": "default",
    "max_map_length": None,
    "on_success_callback": None,
    "on_failure_callback": None,
    "on_retry_callback": None,
}


@dataclass
class TaskContext:
    """What a task may know about the run it is part of; passed as ``context=`` when asked for.

    It is plain data (picklable), so it also reaches tasks run by the process-pool executor.
    """

    dag_id: str
    task_id: str
    run_id: str
    logical_date: datetime | None
    data_interval_start: datetime | None
    data_interval_end: datetime | None
    try_number: int
    map_index: int
    params: dict[str, Any] = field(default_factory=dict)
    conf: dict[str, Any] = field(default_factory=dict)
    upstream_results: dict[str, Any] = field(default_factory=dict)  # direct upstream task id -> result
    triggering_dataset_events: list[Any] = field(default_factory=list)
    error: str | None = None  # the failure, for on_failure_callback / on_retry_callback
    # The scheduler's metadata store, for in-process tasks only (sensors of other DAGs and datasets).
    metadata: Any = field(default=None, repr=False, compare=False)

    def xcom_pull(self, task_id: str) -> Any:
        """The result of a direct upstream task (``None`` if it did not succeed)."""
        if task_id not in self.upstream_results:
            raise KeyError(f"task {self.task_id!r} has no direct upstream task {task_id!r}")
        return self.upstream_results[task_id]


class XComArg:
    """The (future) return value of a task; pass it as an argument to make the task an upstream."""

    __slots__ = ("task",)

    def __init__(self, task: "Task"):
        self.task = task

    @property
    def task_id(self) -> str:
        return self.task.task_id

    def __rshift__(self, other: Any) -> Any:
        return self.task >> other

    def __lshift__(self, other: Any) -> Any:
        return self.task << other

    def __rrshift__(self, other: Any) -> Any:
        return self.task.__rrshift__(other)

    def __rlshift__(self, other: Any) -> Any:
        return self.task.__rlshift__(other)

    def __repr__(self) -> str:
        return f"XComArg({self.task.task_id!r})"


def _targets(other: Any) -> list["Task"]:
    """Flatten the right-hand side of ``>>`` into tasks (entry tasks for a group)."""
    from engine.orchestration.task_group import TaskGroup

    if isinstance(other, Task):
        return [other]
    if isinstance(other, XComArg):
        return [other.task]
    if isinstance(other, TaskGroup):
        return other.roots()
    if isinstance(other, (list, tuple, set)):
        out: list[Task] = []
        for item in other:
            out.extend(_targets(item))
        return out
    raise DagDefinitionError(f"cannot set a dependency on {other!r}: expected a task, a task group or a list of them")


def _sources(other: Any) -> list["Task"]:
    """Flatten the left-hand side of ``>>`` into tasks (exit tasks for a group)."""
    from engine.orchestration.task_group import TaskGroup

    if isinstance(other, TaskGroup):
        return other.leaves()
    if isinstance(other, (list, tuple, set)):
        out: list[Task] = []
        for item in other:
            out.extend(_sources(item))
        return out
    return _targets(other)


class DependencyMixin:
    """``>>`` and ``<<`` for tasks and task groups; both return the right operand, so chains read left to right."""

    def _as_sources(self) -> list["Task"]:
        return _sources(self)

    def _as_targets(self) -> list["Task"]:
        return _targets(self)

    def __rshift__(self, other: Any) -> Any:
        for up in self._as_sources():
            for down in _targets(other):
                up._add_downstream(down)
        return other

    def __lshift__(self, other: Any) -> Any:
        for down in self._as_targets():
            for up in _sources(other):
                up._add_downstream(down)
        return other

    def __rrshift__(self, other: Any) -> Any:  # [a, b] >> self
        for up in _sources(other):
            for down in self._as_targets():
                up._add_downstream(down)
        return self

    def __rlshift__(self, other: Any) -> Any:  # [a, b] << self
        for down in _targets(other):
            for up in self._as_sources():
                up._add_downstream(down)
        return self


def _find_xcom_args(value: Any, out: list[XComArg]) -> None:
    if isinstance(value, XComArg):
        out.append(value)
    elif isinstance(value, (list, tuple, set)):
        for v in value:
            _find_xcom_args(v, out)
    elif isinstance(value, Mapping):
        for v in value.values():
            _find_xcom_args(v, out)


def resolve_xcom_args(value: Any, results: Callable[[str], Any]) -> Any:
    """Replace every `XComArg` inside ``value`` (lists, tuples, dicts) by the upstream's result."""
    if isinstance(value, XComArg):
        return results(value.task.task_id)
    if isinstance(value, list):
        return [resolve_xcom_args(v, results) for v in value]
    if isinstance(value, tuple):
        return tuple(resolve_xcom_args(v, results) for v in value)
    if isinstance(value, Mapping):
        return {k: resolve_xcom_args(v, results) for k, v in value.items()}
    return value


def _seconds(value: Any, name: str, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise DagDefinitionError(f"{where}: {name} must be a timedelta or a number of seconds, got {value!r}")
    if seconds < 0:
        raise DagDefinitionError(f"{where}: {name} must not be negative, got {value!r}")
    return seconds


class Task(DependencyMixin):
    """One node of a DAG.

    ``Task(task_id, fn, args=..., kwargs=...)`` calls ``fn(*args, **kwargs)`` (awaiting it when it is a
    coroutine function); arguments may hold `XComArg` values (other tasks' outputs), which also make
    those tasks upstream. Options (each may come from the DAG's ``default_args``):

    - ``retries``, ``retry_delay`` (timedelta or seconds), ``retry_exponential_backoff`` (delay doubles per
      retry), ``max_retry_delay`` (cap), ``retry_jitter`` (0..1: the delay is drawn uniformly from
      ``[d * (1 - jitter), d]``, so jitter never lengthens a delay past the cap);
    - ``execution_timeout``: per attempt; a timed-out attempt fails (and may be retried);
    - ``trigger_rule`` (see `engine.orchestration.trigger_rules`);
    - ``pool``, ``pool_slots``, ``priority_weight``, ``weight_rule`` (downstream | upstream | absolute);
    - ``outlets``: datasets updated when the task succeeds;
    - ``executor``: ``"default"`` (in-process asyncio) or the name of another executor, e.g. ``"process"``;
    - ``is_branch``: the callable returns the id(s) of the direct downstream tasks to follow;
    - ``is_teardown``: a clean-up task (default rule ``all_done``) that does not decide the run's state,
      so a successful clean-up leaf cannot hide a failure upstream of it;
    - ``on_success_callback``, ``on_failure_callback`` (final failure), ``on_retry_callback``: called
      with the `TaskContext` (``context.error`` holds the failure); sync or async; an exception in a
      callback is logged and never changes the task's state.
    """

    is_sensor = False
    is_mapped = False

    def __init__(
        self,
        task_id: str,
        fn: Callable[..., Any] | None = None,
        *,
        dag: "DAG | None" = None,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        upstream: Iterable[str] = (),
        outlets: Iterable[Dataset] = (),
        is_branch: bool = False,
        is_teardown: bool = False,
        doc: str | None = None,
        retries: int = UNSET,
        retry_delay: Any = UNSET,
        retry_exponential_backoff: bool = UNSET,
        max_retry_delay: Any = UNSET,
        retry_jitter: float = UNSET,
        execution_timeout: Any = UNSET,
        trigger_rule: TriggerRule | str = UNSET,
        pool: str = UNSET,
        pool_slots: int = UNSET,
        priority_weight: int = UNSET,
        weight_rule: WeightRule | str = UNSET,
        executor: str = UNSET,
        max_map_length: int | None = UNSET,
        on_success_callback: Callable[[TaskContext], Any] | None = UNSET,
        on_failure_callback: Callable[[TaskContext], Any] | None = UNSET,
        on_retry_callback: Callable[[TaskContext], Any] | None = UNSET,
        _group: "TaskGroup | None | _Unset" = UNSET,
        _auto_id: bool = False,
    ):
        from engine.orchestration.dag import DAG

        dag = dag if dag is not None else _context.current_dag()
        if dag is None:
            raise DagDefinitionError(
                f"task {task_id!r} is defined outside a DAG: pass dag=..., or define it inside `with DAG(...)` or a @dag function"
            )
        if not isinstance(dag, DAG):
            raise DagDefinitionError(f"task {task_id!r}: dag must be a DAG, got {dag!r}")
        if not isinstance(task_id, str) or not _TASK_ID.match(task_id):
            raise DagDefinitionError(
                f"DAG {dag.dag_id!r}: invalid task id {task_id!r} (letters, digits, '_', '-', '.'; not starting with '.' or '-')"
            )
        group = _context.current_group() if _group is UNSET else _group
        if group is not None and group.dag is not dag:
            group = None
        full_id = group.child_id(task_id) if group is not None else task_id
        if _auto_id:
            full_id = dag._unique_task_id(full_id)
        self.dag = dag
        self.task_id = full_id
        self.group = group
        where = f"DAG {dag.dag_id!r}, task {full_id!r}"
        self._where = where
        if fn is not None and not callable(fn):
            raise DagDefinitionError(f"{where}: the task callable must be callable, got {fn!r}")
        self.fn = fn
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.doc = doc if doc is not None else (inspect.getdoc(fn) if fn is not None else None)
        self.is_branch = bool(is_branch)
        self.is_teardown = bool(is_teardown)
        self.outlets = tuple(outlets)
        for ds in self.outlets:
            if not isinstance(ds, Dataset):
                raise DagDefinitionError(f"{where}: outlets must be Dataset objects, got {ds!r}")

        given = {
            "retries": retries,
            "retry_delay": retry_delay,
            "retry_exponential_backoff": retry_exponential_backoff,
            "max_retry_delay": max_retry_delay,
            "retry_jitter": retry_jitter,
            "execution_timeout": execution_timeout,
            "trigger_rule": trigger_rule,
            "pool": pool,
            "pool_slots": pool_slots,
            "priority_weight": priority_weight,
            "weight_rule": weight_rule,
            "executor": executor,
            "max_map_length": max_map_length,
            "on_success_callback": on_success_callback,
            "on_failure_callback": on_failure_callback,
            "on_retry_callback": on_retry_callback,
        }
        opts = {}
        for name, value in given.items():
            if value is UNSET:
                value = dag.default_args.get(name, TASK_OPTION_DEFAULTS[name])
            opts[name] = value
        self.retries = int(opts["retries"])
        if self.retries < 0:
            raise DagDefinitionError(f"{where}: retries must be >= 0, got {self.retries}")
        self.retry_delay = _seconds(opts["retry_delay"], "retry_delay", where) or 0.0
        self.retry_exponential_backoff = bool(opts["retry_exponential_backoff"])
        self.max_retry_delay = _seconds(opts["max_retry_delay"], "max_retry_delay", where)
        self.retry_jitter = float(opts["retry_jitter"])
        if not 0.0 <= self.retry_jitter <= 1.0:
            raise DagDefinitionError(f"{where}: retry_jitter must be between 0 and 1, got {self.retry_jitter}")
        self.execution_timeout = _seconds(opts["execution_timeout"], "execution_timeout", where)
        if self.is_teardown and trigger_rule is UNSET:
            opts["trigger_rule"] = TriggerRule.ALL_DONE  # clean up whatever happened upstream
        self.trigger_rule = TriggerRule.parse(opts["trigger_rule"], where=f"{where}: ")
        self.pool = str(opts["pool"])
        self.pool_slots = int(opts["pool_slots"])
        if self.pool_slots < 1:
            raise DagDefinitionError(f"{where}: pool_slots must be >= 1, got {self.pool_slots}")
        self.priority_weight = int(opts["priority_weight"])
        try:
            self.weight_rule = WeightRule(str(opts["weight_rule"]))
        except ValueError:
            raise DagDefinitionError(
                f"{where}: unknown weight_rule {opts['weight_rule']!r}; choose downstream, upstream or absolute"
            ) from None
        self.executor = str(opts["executor"])
        mml = opts["max_map_length"]
        self.max_map_length = int(mml) if mml is not None else dag.max_map_length
        self.on_success_callback = opts["on_success_callback"]
        self.on_failure_callback = opts["on_failure_callback"]
        self.on_retry_callback = opts["on_retry_callback"]
        for name in ("on_success_callback", "on_failure_callback", "on_retry_callback"):
            if opts[name] is not None and not callable(opts[name]):
                raise DagDefinitionError(f"{where}: {name} must be callable, got {opts[name]!r}")

        self.upstream_task_ids: set[str] = set()
        self.downstream_task_ids: set[str] = set()
        self._wants_context = False
        if fn is not None:
            try:
                params = inspect.signature(fn).parameters
            except (TypeError, ValueError):  # builtins without a signature
                params = {}
            self._wants_context = "context" in params
        dag.add_task(self)
        if group is not None:
            group._add(self)
        for up in upstream:
            if not isinstance(up, str):
                raise DagDefinitionError(f"{where}: upstream must hold task ids (strings), got {up!r}")
            self.upstream_task_ids.add(up)  # checked by DAG.validate(): the id may be defined later
        found: list[XComArg] = []
        _find_xcom_args(self.args, found)
        _find_xcom_args(self.kwargs, found)
        for xarg in found:
            xarg.task._add_downstream(self)

    # -- dependencies ---------------------------------------------------------------------------
    def _add_downstream(self, other: "Task") -> None:
        if other.dag is not self.dag:
            raise DagDefinitionError(
                f"cannot set {self.task_id!r} >> {other.task_id!r}: they belong to different DAGs "
                f"({self.dag.dag_id!r} and {other.dag.dag_id!r}); use a sensor or a dataset across DAGs"
            )
        if other is self:
            raise DagDefinitionError(f"{self._where}: a task cannot depend on itself")
        self.downstream_task_ids.add(other.task_id)
        other.upstream_task_ids.add(self.task_id)

    def set_downstream(self, other: Any) -> None:
        self >> other

    def set_upstream(self, other: Any) -> None:
        self << other

    @property
    def output(self) -> XComArg:
        """This task's return value, to pass to other tasks as an argument."""
        return XComArg(self)

    # -- mapping --------------------------------------------------------------------------------
    @classmethod
    def partial(cls, task_id: str, fn: Callable[..., Any] | None = None, **options: Any) -> "PartialTask":
        """Start a mapped task: ``Task.partial("double", fn, kwargs={"factor": 2}).expand(x=up.output)``."""
        return PartialTask(task_id, fn, options)

    # -- execution ------------------------------------------------------------------------------
    def call_arguments(self, results: Callable[[str], Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The positional and keyword arguments for one attempt, upstream outputs resolved."""
        if not self.args and not self.kwargs:
            return (), {}
        args = resolve_xcom_args(self.args, results)
        kwargs = resolve_xcom_args(self.kwargs, results)
        return args, kwargs

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.dag.dag_id}.{self.task_id}>"


class PartialTask:
    """A task definition with its fixed arguments, waiting for ``.expand(...)`` (not a node of the DAG yet)."""

    def __init__(self, task_id: str, fn: Callable[..., Any] | None, options: dict[str, Any]):
        self.task_id = task_id
        self.fn = fn
        self.options = options

    def expand(self, **mapped: Any) -> "MappedTask":
        return MappedTask(self.task_id, self.fn, expand=mapped, **self.options)


class MappedTask(Task):
    """A task expanded at run time into one instance per item (map_index 0..n-1) of its mapped arguments."""

    is_mapped = True
    expand_kwargs: dict[str, Any]

    def __init__(self, task_id: str, fn: Callable[..., Any] | None = None, *, expand: Mapping[str, Any], **options: Any):
        self.expand_kwargs = {}
        super().__init__(task_id, fn, **options)
        if not expand:
            raise DagDefinitionError(f"{self._where}: expand() needs at least one keyword argument to map over")
        overlap = set(expand) & set(self.kwargs)
        if overlap:
            raise DagDefinitionError(f"{self._where}: argument(s) {sorted(overlap)} are both fixed by partial() and expanded")
        for name, value in expand.items():
            if isinstance(value, XComArg):
                value.task._add_downstream(self)
            elif not isinstance(value, (list, tuple)):
                raise DagDefinitionError(
                    f"{self._where}: cannot map over argument {name!r}: expected a list or an upstream task's output, "
                    f"got {type(value).__name__} {value!r}"
                )
            else:
                found: list[XComArg] = []
                _find_xcom_args(value, found)
                for xarg in found:
                    xarg.task._add_downstream(self)
            self.expand_kwargs[name] = value
        if len(list(self.expand_kwargs)) and self.max_map_length < 1:
            raise DagDefinitionError(f"{self._where}: max_map_length must be >= 1")
