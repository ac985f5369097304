"""Pools: named slot counts shared by every task (of every DAG) that names them."""

from __future__ import annotations

from dataclasses import dataclass

from engine.orchestration.exceptions import OrchestrationError


@dataclass
class Pool:
    """A named number of slots shared by every task (of every DAG) that names it."""

    name: str
    slots: int

    def __post_init__(self) -> None:
        if self.slots < 1:
            raise OrchestrationError(f"pool {self.name!r} needs at least one slot, got {self.slots}")
