"""Exceptions of the orchestration layer; all derive from `engine.errors.OrchestrationError`.

::

    OrchestrationError                 (engine.errors)
    ├── DagDefinitionError             an invalid DAG, refused at load time (names the DAG and task)
    │   └── CronSyntaxError            an invalid cron expression
    ├── DagLoadError                   a DAG file could not be imported
    ├── TaskFailedError                a task attempt failed (wraps the user's exception)
    │   ├── TaskTimeoutError           an attempt exceeded ``execution_timeout``
    │   └── SensorTimeoutError         a sensor exceeded its ``timeout`` (across attempts)
    ├── FailFastError                  raise it in a task to fail now, skipping remaining retries
    ├── SkipTaskError                  raise it in a task to mark it skipped
    └── UnknownDagError                a DAG id, run id or pool the scheduler does not know
"""

from __future__ import annotations

from engine.errors import OrchestrationError


class DagDefinitionError(OrchestrationError, ValueError):
    """The DAG is invalid; raised while it is defined or loaded, before anything runs."""


class CronSyntaxError(DagDefinitionError):
    """A cron expression that cannot be parsed (names the field and the value)."""


class DagLoadError(OrchestrationError):
    """A DAG definition file raised while it was imported."""


class TaskFailedError(OrchestrationError):
    """A task attempt failed; ``__cause__`` is the user's exception when there is one."""


class TaskTimeoutError(TaskFailedError):
    """A task attempt ran longer than its ``execution_timeout``."""


class SensorTimeoutError(TaskFailedError):
    """A sensor did not succeed within its ``timeout`` (measured across all attempts)."""


class FailFastError(OrchestrationError):
    """Raise from a task to fail it immediately: the remaining retries are skipped."""


class SkipTaskError(OrchestrationError):
    """Raise from a task to end it in the ``skipped`` state (its downstream follow the trigger rules)."""


class UnknownDagError(OrchestrationError, KeyError):
    """A DAG id, run id, task id or pool name that the scheduler does not know."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""
