"""Datasets: named data that tasks produce and DAGs can be scheduled on.

A task declares ``outlets=[Dataset("s3://bucket/orders")]``; each time it succeeds, the scheduler
records a dataset event (persisted with the task's success, in one transaction). A DAG with
``schedule=[a, b]`` (all of), ``schedule=DatasetAll(a, b)``, ``DatasetAny(a, b)``, or expressions built with
``&`` and ``|`` runs once its condition holds over the events queued for it since its last
dataset-triggered run. Several events for the same dataset between two runs are collapsed into that one
run, which receives all of them (``context.triggering_dataset_events``); the queue is persisted, so no
update is lost across a scheduler restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Union

from engine.orchestration.exceptions import DagDefinitionError


@dataclass(frozen=True)
class Dataset:
    """A dataset identified by its ``uri`` (any non-empty string without spaces)."""

    uri: str
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.uri, str) or not self.uri or any(ch.isspace() for ch in self.uri):
            raise DagDefinitionError(f"Dataset uri must be a non-empty string without spaces, got {self.uri!r}")

    def __and__(self, other: "DatasetCondition") -> "DatasetAll":
        return DatasetAll(self, other)

    def __or__(self, other: "DatasetCondition") -> "DatasetAny":
        return DatasetAny(self, other)

    def uris(self) -> set[str]:
        return {self.uri}

    def evaluate(self, updated: set[str]) -> bool:
        return self.uri in updated

    def __str__(self) -> str:
        return self.uri


class _DatasetBoolean:
    def __init__(self, *conditions: "DatasetCondition"):
        if not conditions:
            raise DagDefinitionError(f"{type(self).__name__} needs at least one dataset")
        for c in conditions:
            if not isinstance(c, (Dataset, _DatasetBoolean)):
                raise DagDefinitionError(f"{type(self).__name__} takes Dataset objects or conditions, got {c!r}")
        self.conditions = tuple(conditions)

    def __and__(self, other: "DatasetCondition") -> "DatasetAll":
        return DatasetAll(self, other)

    def __or__(self, other: "DatasetCondition") -> "DatasetAny":
        return DatasetAny(self, other)

    def uris(self) -> set[str]:
        out: set[str] = set()
        for c in self.conditions:
            out |= c.uris()
        return out

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.conditions == self.conditions  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.conditions))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.conditions))})"


class DatasetAll(_DatasetBoolean):
    """Holds when every condition holds."""

    def evaluate(self, updated: set[str]) -> bool:
        return all(c.evaluate(updated) for c in self.conditions)


class DatasetAny(_DatasetBoolean):
    """Holds when at least one condition holds."""

    def evaluate(self, updated: set[str]) -> bool:
        return any(c.evaluate(updated) for c in self.conditions)


DatasetCondition = Union[Dataset, DatasetAll, DatasetAny]


def as_condition(value: "DatasetCondition | Iterable[Dataset]") -> DatasetCondition:
    """A schedule given as a list of datasets means "all of them" (Airflow's meaning)."""
    if isinstance(value, (Dataset, _DatasetBoolean)):
        return value  # type: ignore[return-value]
    items = list(value)
    if len(items) == 1 and isinstance(items[0], (Dataset, _DatasetBoolean)):
        return items[0]
    return DatasetAll(*items)


@dataclass(frozen=True)
class DatasetEvent:
    """One recorded update of a dataset."""

    id: int
    uri: str
    timestamp: str  # ISO-8601 UTC
    extra: dict[str, Any] = field(default_factory=dict)
    source_dag_id: str | None = None
    source_run_id: str | None = None
    source_task_id: str | None = None
