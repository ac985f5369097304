"""Task groups: a named set of tasks whose ids are prefixed with the group id (``group.task``).

``with TaskGroup("extract"):`` (nestable: ``outer.inner.task``) or the `task_group` decorator. A group
can stand in a dependency: ``group >> t`` makes ``t`` downstream of the group's leaves, ``t >> group``
upstream of its roots. A branch task may return a group id to follow all of the group's roots.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any, Callable

from engine.orchestration import _context
from engine.orchestration.exceptions import DagDefinitionError
from engine.orchestration.task import DependencyMixin

if TYPE_CHECKING:  # pragma: no cover
    from engine.orchestration.dag import DAG
    from engine.orchestration.task import Task

_GROUP_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$")


class TaskGroup(DependencyMixin):
    def __init__(self, group_id: str, *, dag: "DAG | None" = None, prefix_group_id: bool = True):
        dag = dag if dag is not None else _context.current_dag()
        if dag is None:
            raise DagDefinitionError(f"task group {group_id!r} is defined outside a DAG")
        if not isinstance(group_id, str) or not _GROUP_ID.match(group_id):
            raise DagDefinitionError(f"DAG {dag.dag_id!r}: invalid task group id {group_id!r}")
        parent = _context.current_group()
        self.dag = dag
        self.parent = parent if parent is not None and parent.dag is dag else None
        self.group_id = self.parent.child_id(group_id) if self.parent is not None else group_id
        self.prefix_group_id = prefix_group_id
        self.tasks: list["Task"] = []
        dag._add_group(self)

    def child_id(self, name: str) -> str:
        return f"{self.group_id}.{name}" if self.prefix_group_id else (
            self.parent.child_id(name) if self.parent is not None else name
        )

    def _add(self, task: "Task") -> None:
        self.tasks.append(task)
        if self.parent is not None:
            self.parent._add(task)

    def roots(self) -> list["Task"]:
        """Tasks of the group with no upstream inside the group."""
        ids = {t.task_id for t in self.tasks}
        return [t for t in self.tasks if not (t.upstream_task_ids & ids)]

    def leaves(self) -> list["Task"]:
        """Tasks of the group with no downstream inside the group."""
        ids = {t.task_id for t in self.tasks}
        return [t for t in self.tasks if not (t.downstream_task_ids & ids)]

    def _as_sources(self) -> list["Task"]:
        return self.leaves()

    def _as_targets(self) -> list["Task"]:
        return self.roots()

    def __enter__(self) -> "TaskGroup":
        _context.push_group(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _context.pop_group()

    def __repr__(self) -> str:
        return f"<TaskGroup {self.group_id}>"


def task_group(fn: Callable[..., Any] | None = None, *, group_id: str | None = None) -> Any:
    """Decorate a function whose body defines tasks; calling it creates a `TaskGroup` and returns it."""

    def decorate(f: Callable[..., Any]) -> Callable[..., TaskGroup]:
        @functools.wraps(f)
        def make(*args: Any, **kwargs: Any) -> TaskGroup:
            dag = _context.current_dag()
            gid = group_id or f.__name__
            if dag is not None:
                gid = dag._unique_group_id(gid)
            with TaskGroup(gid) as group:
                f(*args, **kwargs)
            return group

        return make

    return decorate(fn) if fn is not None else decorate
