"""Task-instance and DAG-run states (the names Airflow users know)."""

from __future__ import annotations

from enum import Enum


class TaskState(str, Enum):
    NONE = "none"  # not yet decided
    SCHEDULED = "scheduled"  # dependencies met, waiting for a pool slot
    RUNNING = "running"
    UP_FOR_RETRY = "up_for_retry"  # failed, a retry is pending (its delay is running)
    UP_FOR_RESCHEDULE = "up_for_reschedule"  # a reschedule-mode sensor between two pokes (slot freed)
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"
    UPSTREAM_FAILED = "upstream_failed"
    REMOVED = "removed"

    def __str__(self) -> str:
        return self.value


TERMINAL_STATES = frozenset(
    {TaskState.SUCCESS, TaskState.FAILED, TaskState.SKIPPED, TaskState.UPSTREAM_FAILED, TaskState.REMOVED}
)


class RunState(str, Enum):
    QUEUED = "queued"  # created, waiting for max_active_runs
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


FINISHED_RUN_STATES = frozenset({RunState.SUCCESS, RunState.FAILED})
