"""Backfill: run a DAG for every scheduled interval in a date range.

``await backfill(scheduler, "etl", start, end, reprocess="failed", max_active_runs=4, backwards=True)``

- the intervals are those of the DAG's timetable whose logical date lies in ``[start, end]``;
- ``reprocess`` decides what happens to dates that already have a run: ``"none"`` leaves them alone,
  ``"failed"`` clears the failed and upstream_failed tasks of failed runs and runs them again (the
  tasks that succeeded keep their results), ``"all"`` clears and reruns every finished run;
- at most ``max_active_runs`` backfill runs are active at once (and never more than the DAG's own
  ``max_active_runs``); ``backwards=True`` processes the newest date first;
- progress is reported through ``on_progress`` (a `BackfillProgress` after every change) and logged.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Mapping

from engine.orchestration.exceptions import OrchestrationError
from engine.orchestration.schedules.timetables import DataInterval
from engine.orchestration.scheduler import Scheduler
from engine.orchestration.states import RunState

logger = logging.getLogger(__name__)

REPROCESS = ("none", "failed", "all")


@dataclass
class BackfillProgress:
    dag_id: str
    total: int  # dates in the range
    left_alone: int = 0  # existing runs not reprocessed
    queued: int = 0  # runs created or cleared so far
    succeeded: int = 0
    failed: int = 0
    run_ids: list[str] = field(default_factory=list)

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed

    @property
    def running(self) -> int:
        return self.queued - self.finished

    @property
    def done(self) -> bool:
        return self.left_alone + self.finished == self.total

    def __str__(self) -> str:
        return (f"backfill {self.dag_id}: {self.finished + self.left_alone}/{self.total} dates done "
                f"({self.succeeded} succeeded, {self.failed} failed, {self.left_alone} left alone, {self.running} running)")


async def backfill(
    scheduler: Scheduler,
    dag_id: str,
    start: datetime,
    end: datetime,
    *,
    reprocess: str = "none",
    max_active_runs: int | None = None,
    backwards: bool = False,
    conf: Mapping[str, Any] | None = None,
    on_progress: Callable[[BackfillProgress], None] | None = None,
) -> BackfillProgress:
    """Run the DAG over ``[start, end]``; return the final progress (see the module docstring)."""
    dag = scheduler.get_dag(dag_id)
    if reprocess not in REPROCESS:
        raise OrchestrationError(f"backfill of DAG {dag_id!r}: reprocess must be one of {REPROCESS}, got {reprocess!r}")
    if start.tzinfo is None:
        start = start.replace(tzinfo=dag.timezone)
    if end.tzinfo is None:
        end = end.replace(tzinfo=dag.timezone)
    if end < start:
        raise OrchestrationError(f"backfill of DAG {dag_id!r}: end {end.isoformat()} is before start {start.isoformat()}")
    limit = max_active_runs or dag.max_active_runs
    if limit < 1:
        raise OrchestrationError(f"backfill of DAG {dag_id!r}: max_active_runs must be >= 1")
    intervals: list[DataInterval] = list(dag.timetable.intervals(start, end))
    if backwards:
        intervals.reverse()
    progress = BackfillProgress(dag_id, len(intervals))
    pending: deque[DataInterval] = deque(intervals)
    active: set[str] = set()
    finished_now: list[tuple[str, str]] = []
    report = on_progress or (lambda p: None)

    def on_finished(result: Any) -> None:
        finished_now.append((result.run_id, result.state.value))

    def feed() -> bool:
        changed = False
        while finished_now:
            run_id, state = finished_now.pop()
            active.discard(run_id)
            if state == RunState.SUCCESS.value:
                progress.succeeded += 1
            else:
                progress.failed += 1
            changed = True
        while pending and len(active) < limit:
            interval = pending.popleft()
            existing = scheduler.store.run_for_logical_date(dag_id, interval.start)
            run_id = None
            if existing is None:
                run_id = scheduler._create_run(dag, interval.start, interval, "backfill", dict(conf or {}), None)
            elif existing.state in (RunState.QUEUED.value, RunState.RUNNING.value) or reprocess == "none" or (
                reprocess == "failed" and existing.state != RunState.FAILED.value
            ):
                progress.left_alone += 1
            else:
                scheduler._clear_now(dag_id, existing.run_id, only_failed=reprocess == "failed")
                run_id = existing.run_id
            if run_id is not None:
                active.add(run_id)
                progress.queued += 1
                progress.run_ids.append(run_id)
                scheduler._on_run_finished(dag_id, run_id, on_finished)
            changed = True
        if changed:
            logger.info("%s", progress)
            report(progress)
        return changed

    report(progress)
    await scheduler._loop(lambda: not pending and not active and not finished_now, hook=feed)
    return progress
