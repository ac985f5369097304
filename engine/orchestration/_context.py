"""The DAG and task group being defined (``with DAG(...)``, ``with TaskGroup(...)``, ``@dag`` bodies)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

_dags: ContextVar[tuple[Any, ...]] = ContextVar("engine_orchestration_dags", default=())
_groups: ContextVar[tuple[Any, ...]] = ContextVar("engine_orchestration_groups", default=())


def current_dag() -> Any:
    stack = _dags.get()
    return stack[-1] if stack else None


def push_dag(dag: Any) -> None:
    _dags.set(_dags.get() + (dag,))


def pop_dag() -> None:
    _dags.set(_dags.get()[:-1])


def current_group() -> Any:
    stack = _groups.get()
    return stack[-1] if stack else None


def push_group(group: Any) -> None:
    _groups.set(_groups.get() + (group,))


def pop_group() -> None:
    _groups.set(_groups.get()[:-1])
