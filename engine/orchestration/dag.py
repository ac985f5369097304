"""DAG: a validated graph of tasks plus its schedule and run limits.

``with DAG("etl", schedule="0 2 * * *", start_date=datetime(2024, 1, 1), timezone="Europe/Berlin"):``
defines tasks inside the block; leaving the block validates the graph (as does the ``@dag`` decorator
and every loader): cycles, upstream ids that name no task, duplicate task ids and bad schedules raise
`DagDefinitionError` naming the DAG and the task.

Options Airflow users know: ``schedule`` (None = manual only, ``"@once"``, a cron expression or alias,
a ``timedelta``, a timetable, or datasets), ``start_date``/``end_date`` (naive datetimes are local to
``timezone``), ``catchup`` (default False: only the most recent interval runs when the DAG is first
scheduled or after downtime; True creates a run for every missed interval), ``max_active_runs``,
``max_active_tasks``, ``default_args`` (task options), ``params``, ``tags``, ``on_success_callback`` /
``on_failure_callback`` (called with the `DagRunResult` when a run ends).
"""

from __future__ import annotations

import re
from collections import deque
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.orchestration import _context
from engine.orchestration.exceptions import DagDefinitionError
from engine.orchestration.task import TASK_OPTION_DEFAULTS, DEFAULT_MAX_MAP_LENGTH, Task, WeightRule

if TYPE_CHECKING:  # pragma: no cover
    from engine.orchestration.task_group import TaskGroup

_DAG_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def as_timezone(value: Any, where: str = "") -> ZoneInfo:
    if isinstance(value, ZoneInfo):
        return value
    try:
        return ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise DagDefinitionError(f"{where}unknown timezone {value!r} (use an IANA name such as 'Europe/Berlin')") from None


class DAG:
    def __init__(
        self,
        dag_id: str,
        *,
        schedule: Any = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        timezone: str | ZoneInfo = "UTC",
        catchup: bool = False,
        max_active_runs: int = 16,
        max_active_tasks: int = 16,
        max_map_length: int = DEFAULT_MAX_MAP_LENGTH,
        default_args: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        description: str | None = None,
        on_success_callback: Callable[[Any], Any] | None = None,
        on_failure_callback: Callable[[Any], Any] | None = None,
    ):
        from engine.orchestration.schedules import make_timetable

        if not isinstance(dag_id, str) or not _DAG_ID.match(dag_id):
            raise DagDefinitionError(f"invalid DAG id {dag_id!r} (letters, digits, '_', '-', '.')")
        self.dag_id = dag_id
        where = f"DAG {dag_id!r}: "
        self.timezone = as_timezone(timezone, where)
        self.start_date = self._aware(start_date, "start_date")
        self.end_date = self._aware(end_date, "end_date")
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise DagDefinitionError(f"{where}end_date {end_date} is before start_date {start_date}")
        self.schedule = schedule
        self.timetable = make_timetable(schedule, self.timezone, where=where)
        if (self.timetable.periodic or isinstance(schedule, str) and schedule.strip().lower() == "@once") and self.start_date is None:
            raise DagDefinitionError(
                f"{where}schedule {schedule!r} needs a start_date (the first data interval starts there); "
                "use schedule=None for a DAG that only runs when triggered"
            )
        self.catchup = bool(catchup)
        if int(max_active_runs) < 1 or int(max_active_tasks) < 1:
            raise DagDefinitionError(f"{where}max_active_runs and max_active_tasks must be >= 1")
        self.max_active_runs = int(max_active_runs)
        self.max_active_tasks = int(max_active_tasks)
        self.max_map_length = int(max_map_length)
        self.default_args = dict(default_args or {})
        unknown = set(self.default_args) - set(TASK_OPTION_DEFAULTS)
        if unknown:
            raise DagDefinitionError(
                f"{where}unknown default_args {sorted(unknown)}; known: {sorted(TASK_OPTION_DEFAULTS)}"
            )
        self.params = dict(params or {})
        self.tags = list(tags)
        self.description = description
        for name, cb in (("on_success_callback", on_success_callback), ("on_failure_callback", on_failure_callback)):
            if cb is not None and not callable(cb):
                raise DagDefinitionError(f"{where}{name} must be callable, got {cb!r}")
        self.on_success_callback = on_success_callback  # called with the DagRunResult
        self.on_failure_callback = on_failure_callback
        self.task_dict: dict[str, Task] = {}
        self.task_groups: dict[str, "TaskGroup"] = {}
        self._validated = False
        self._priorities: dict[str, int] | None = None
        self._order: list[str] | None = None

    def _aware(self, value: datetime | None, name: str) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise DagDefinitionError(f"DAG {self.dag_id!r}: {name} must be a datetime, got {value!r}")
        return value.replace(tzinfo=self.timezone) if value.tzinfo is None else value

    # -- building -------------------------------------------------------------------------------
    def __enter__(self) -> "DAG":
        _context.push_dag(self)
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        _context.pop_dag()
        if exc_type is None:
            self.validate()

    def add_task(self, task: Task) -> None:
        if task.task_id in self.task_dict:
            raise DagDefinitionError(f"DAG {self.dag_id!r}: duplicate task id {task.task_id!r}")
        if task.task_id in self.task_groups:
            raise DagDefinitionError(f"DAG {self.dag_id!r}: task id {task.task_id!r} is already a task group id")
        self.task_dict[task.task_id] = task
        self._validated = False

    def _add_group(self, group: "TaskGroup") -> None:
        if group.group_id in self.task_groups or group.group_id in self.task_dict:
            raise DagDefinitionError(f"DAG {self.dag_id!r}: duplicate task group id {group.group_id!r}")
        self.task_groups[group.group_id] = group

    def _unique_task_id(self, task_id: str) -> str:
        if task_id not in self.task_dict:
            return task_id
        n = 1
        while f"{task_id}__{n}" in self.task_dict:
            n += 1
        return f"{task_id}__{n}"

    def _unique_group_id(self, group_id: str) -> str:
        parent = _context.current_group()
        full = (lambda g: parent.child_id(g)) if parent is not None else (lambda g: g)
        if full(group_id) not in self.task_groups:
            return group_id
        n = 1
        while full(f"{group_id}__{n}") in self.task_groups:
            n += 1
        return f"{group_id}__{n}"

    # -- reading --------------------------------------------------------------------------------
    @property
    def tasks(self) -> list[Task]:
        return list(self.task_dict.values())

    @property
    def task_ids(self) -> list[str]:
        return list(self.task_dict)

    def get_task(self, task_id: str) -> Task:
        try:
            return self.task_dict[task_id]
        except KeyError:
            raise DagDefinitionError(f"DAG {self.dag_id!r} has no task {task_id!r}") from None

    @property
    def roots(self) -> list[Task]:
        return [t for t in self.task_dict.values() if not t.upstream_task_ids]

    @property
    def leaves(self) -> list[Task]:
        return [t for t in self.task_dict.values() if not t.downstream_task_ids]

    def topological_order(self) -> list[str]:
        self.validate()
        assert self._order is not None
        return list(self._order)

    # -- validation -----------------------------------------------------------------------------
    def validate(self) -> "DAG":
        """Check the graph; raise `DagDefinitionError` naming the DAG and the offending task."""
        if self._validated:
            return self
        if not self.task_dict:
            raise DagDefinitionError(f"DAG {self.dag_id!r} has no tasks")
        for task in self.task_dict.values():
            for up in sorted(task.upstream_task_ids):
                if up not in self.task_dict:
                    raise DagDefinitionError(
                        f"DAG {self.dag_id!r}, task {task.task_id!r}: unknown upstream task id {up!r}"
                    )
                self.task_dict[up].downstream_task_ids.add(task.task_id)
        self._order = self._toposort()
        self._priorities = None
        self._validated = True
        return self

    def _toposort(self) -> list[str]:
        indegree = {tid: len(t.upstream_task_ids) for tid, t in self.task_dict.items()}
        ready = deque(tid for tid, n in indegree.items() if n == 0)
        order: list[str] = []
        while ready:
            tid = ready.popleft()
            order.append(tid)
            for down in sorted(self.task_dict[tid].downstream_task_ids):
                indegree[down] -= 1
                if indegree[down] == 0:
                    ready.append(down)
        if len(order) != len(self.task_dict):
            cycle = self._find_cycle({tid for tid, n in indegree.items() if n > 0})
            raise DagDefinitionError(
                f"DAG {self.dag_id!r} has a cycle: {' >> '.join(cycle)} (task {cycle[0]!r} depends on itself)"
            )
        return order

    def _find_cycle(self, candidates: set[str]) -> list[str]:
        # Walk upstream edges inside the unresolved set until a task repeats: that closes a cycle.
        start = min(candidates)
        path: list[str] = []
        seen: dict[str, int] = {}
        node = start
        while node not in seen:
            seen[node] = len(path)
            path.append(node)
            node = min(u for u in self.task_dict[node].upstream_task_ids if u in candidates)
        loop = path[seen[node]:] + [node]
        return list(reversed(loop))

    # -- priorities -----------------------------------------------------------------------------
    def priority_weights(self) -> dict[str, int]:
        """Effective priority of every task under its weight rule (Airflow's definition).

        ``downstream``: own weight + the weights of all tasks reachable downstream (each counted once);
        ``upstream``: the same upstream; ``absolute``: own weight. Reachability sets are bitsets (Python
        ints), so a 10,000-task chain costs milliseconds rather than a quadratic walk.
        """
        if self._priorities is not None:
            return self._priorities
        order = self.topological_order()
        index = {tid: i for i, tid in enumerate(order)}
        extra = {index[t.task_id]: t.priority_weight - 1 for t in self.task_dict.values() if t.priority_weight != 1}
        rules = {t.weight_rule for t in self.task_dict.values()}

        def reach(ids: list[str], edges: str) -> dict[str, int]:
            bits: dict[str, int] = {}
            for tid in ids:
                acc = 0
                for other in getattr(self.task_dict[tid], edges):
                    acc |= bits[other] | (1 << index[other])
                bits[tid] = acc
            return bits

        down = reach(list(reversed(order)), "downstream_task_ids") if WeightRule.DOWNSTREAM in rules else {}
        up = reach(order, "upstream_task_ids") if WeightRule.UPSTREAM in rules else {}

        def total(bits: int) -> int:
            s = bits.bit_count() if hasattr(int, "bit_count") else bin(bits).count("1")
            for i, e in extra.items():
                if bits >> i & 1:
                    s += e
            return s

        out: dict[str, int] = {}
        for tid, t in self.task_dict.items():
            if t.weight_rule is WeightRule.ABSOLUTE:
                out[tid] = t.priority_weight
            elif t.weight_rule is WeightRule.DOWNSTREAM:
                out[tid] = t.priority_weight + total(down[tid])
            else:
                out[tid] = t.priority_weight + total(up[tid])
        self._priorities = out
        return out

    def __repr__(self) -> str:
        return f"<DAG {self.dag_id} ({len(self.task_dict)} tasks)>"
