"""Orchestration: DAGs of sync/async tasks with Airflow's semantics, on an asyncio scheduler.

Define DAGs with decorators (`dag`, `task`) or objects (`DAG`, `Task`, `TaskGroup`); run them with a
`Scheduler` (persistent metadata in SQLite), from Python or with ``engine dags ...``. Modules:
`dag`, `task`, `task_group`, `decorators` (definitions); `trigger_rules`, `scheduler`, `run_model`,
`pools`, `retry`, `executors`, `clock` (execution); `schedules` (cron, timetables), `datasets`,
`sensors`, `backfill`, `stream_task`; `store` (SQLite metadata), `loader` and `cli`.
User guide: docs/orchestration.md.
"""

from engine.orchestration.backfill import BackfillProgress, backfill
from engine.orchestration.clock import Clock, FakeClock
from engine.orchestration.dag import DAG
from engine.orchestration.datasets import Dataset, DatasetAll, DatasetAny, DatasetEvent
from engine.orchestration.decorators import dag, task
from engine.orchestration.exceptions import (
    CronSyntaxError,
    DagDefinitionError,
    DagLoadError,
    FailFastError,
    SensorTimeoutError,
    SkipTaskError,
    TaskFailedError,
    TaskTimeoutError,
    UnknownDagError,
)
from engine.orchestration.executors import AsyncioExecutor, Executor, ProcessPoolExecutor
from engine.orchestration.schedules import CronExpression, DataInterval
from engine.orchestration.pools import Pool
from engine.orchestration.run_model import DagRunResult
from engine.orchestration.scheduler import Scheduler
from engine.orchestration.sensors import (
    DatasetSensor,
    ExternalDagSensor,
    FileSensor,
    KafkaSensor,
    PokeResult,
    PythonSensor,
    Sensor,
)
from engine.orchestration.states import RunState, TaskState
from engine.orchestration.store import MetadataStore
from engine.orchestration.stream_task import DataflowTask
from engine.orchestration.task import MappedTask, Task, TaskContext, WeightRule, XComArg
from engine.orchestration.task_group import TaskGroup, task_group
from engine.orchestration.trigger_rules import TriggerRule

__all__ = [
    "AsyncioExecutor",
    "BackfillProgress",
    "Clock",
    "CronExpression",
    "CronSyntaxError",
    "DAG",
    "DagDefinitionError",
    "DagLoadError",
    "DagRunResult",
    "DataInterval",
    "DataflowTask",
    "Dataset",
    "DatasetAll",
    "DatasetAny",
    "DatasetEvent",
    "DatasetSensor",
    "Executor",
    "ExternalDagSensor",
    "FailFastError",
    "FakeClock",
    "FileSensor",
    "KafkaSensor",
    "MappedTask",
    "MetadataStore",
    "PokeResult",
    "Pool",
    "ProcessPoolExecutor",
    "PythonSensor",
    "RunState",
    "Scheduler",
    "Sensor",
    "SensorTimeoutError",
    "SkipTaskError",
    "Task",
    "TaskContext",
    "TaskFailedError",
    "TaskGroup",
    "TaskState",
    "TaskTimeoutError",
    "TriggerRule",
    "UnknownDagError",
    "WeightRule",
    "XComArg",
    "backfill",
    "dag",
    "task",
    "task_group",
]
