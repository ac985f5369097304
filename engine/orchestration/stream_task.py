"""A task that runs a bounded stream job (a `Dataflow`) with checkpoints: the seam to the runtime.

``DataflowTask("aggregate_day", build)`` calls ``build(context)`` (or ``build()``) to get a flow for the
run's data interval, then runs it to completion with ``await flow.run_async(checkpoint_dir=...,
checkpoint_interval=...)`` (or ``flow.run(...)`` in a thread when the flow has no ``run_async``). The
checkpoint directory is stable per DAG, task and logical date
(``<checkpoint_root>/<dag_id>/<task_id>/<logical date>``), so a retry, or a rerun after a scheduler
crash, resumes the job from its last checkpoint instead of starting over, and a backfill of a stream
job is a DAG backfill. The task's result is whatever the run returns, when it is a small
JSON-compatible value (``None`` otherwise is fine).

The flow is duck-typed (anything with ``run_async`` or ``run`` accepting those keywords), so this
module does not import the runtime.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

from engine.orchestration.exceptions import DagDefinitionError, TaskFailedError
from engine.orchestration.task import Task, TaskContext

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


class DataflowTask(Task):
    def __init__(
        self,
        task_id: str,
        build: Callable[..., Any],
        *,
        checkpoint_root: str | Path = "checkpoints",
        checkpoint_interval: float | timedelta | None = None,
        **options: Any,
    ):
        if not callable(build):
            raise DagDefinitionError(f"DataflowTask {task_id!r}: build must be a callable returning a Dataflow")
        self.build = build
        self.checkpoint_root = Path(checkpoint_root)
        if isinstance(checkpoint_interval, timedelta):
            checkpoint_interval = checkpoint_interval.total_seconds()
        self.checkpoint_interval = checkpoint_interval
        try:
            self._build_takes_context = "context" in inspect.signature(build).parameters
        except (TypeError, ValueError):
            self._build_takes_context = False
        super().__init__(task_id, self._run_flow, **options)

    def checkpoint_dir(self, context: TaskContext) -> Path:
        date = context.logical_date.isoformat() if context.logical_date else context.run_id
        return self.checkpoint_root / _UNSAFE.sub("_", context.dag_id) / _UNSAFE.sub("_", self.task_id) / _UNSAFE.sub("_", date)

    async def _run_flow(self, context: TaskContext) -> Any:
        flow = self.build(context=context) if self._build_takes_context else self.build()
        if inspect.isawaitable(flow):
            flow = await flow
        directory = self.checkpoint_dir(context)
        directory.mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = {"checkpoint_dir": str(directory)}
        if self.checkpoint_interval is not None:
            kwargs["checkpoint_interval"] = self.checkpoint_interval
        if hasattr(flow, "run_async"):
            return await flow.run_async(**kwargs)
        if hasattr(flow, "run"):
            return await asyncio.to_thread(flow.run, **kwargs)
        raise TaskFailedError(
            f"DAG {self.dag.dag_id!r}, task {self.task_id!r}: build() returned {type(flow).__name__}, not a Dataflow "
            "(an object with run_async() or run())"
        )
