"""The decorator API: ``@dag`` and ``@task`` (also ``@task.branch`` and ``@task.sensor``).

::

    @dag(schedule="@daily", start_date=datetime(2024, 1, 1))
    def etl():
        @task(retries=2)
        def extract() -> list[int]:
            return [1, 2, 3]

        @task
        async def double(x: int) -> int:
            return 2 * x

        @task
        def load(values: list[int]) -> None:
            ...

        load(double.expand(x=extract()))

    etl_dag = etl()          # builds and validates the DAG

Calling a ``@task`` function inside a DAG adds a task and returns its `XComArg`; calling it twice adds
two tasks (``extract``, ``extract__1``). ``.override(task_id=..., retries=...)`` changes options for
one call; ``.partial(**fixed).expand(**mapped)`` maps it.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from engine.orchestration import _context
from engine.orchestration.exceptions import DagDefinitionError
from engine.orchestration.task import MappedTask, Task, XComArg


class TaskFactory:
    """What ``@task`` turns a function into; calling it (inside a DAG) adds a task."""

    def __init__(self, fn: Callable[..., Any], options: dict[str, Any], task_class: type = Task):
        if not callable(fn):
            raise DagDefinitionError(f"@task decorates a function, got {fn!r}")
        self.fn = fn
        self.options = dict(options)
        self.task_class = task_class
        functools.update_wrapper(self, fn)

    @property
    def _task_id(self) -> str:
        return self.options.get("task_id") or self.fn.__name__

    def _options(self) -> dict[str, Any]:
        return {k: v for k, v in self.options.items() if k != "task_id"}

    def override(self, **options: Any) -> "TaskFactory":
        return TaskFactory(self.fn, {**self.options, **options}, self.task_class)

    def __call__(self, *args: Any, **kwargs: Any) -> XComArg:
        if _context.current_dag() is None:
            raise DagDefinitionError(
                f"@task {self._task_id!r} was called outside a DAG; call it inside a @dag function or `with DAG(...)`"
            )
        t = self.task_class(self._task_id, self.fn, args=args, kwargs=kwargs, _auto_id=True, **self._options())
        return XComArg(t)

    def partial(self, **fixed: Any) -> "_PartialFactory":
        return _PartialFactory(self, fixed)

    def expand(self, **mapped: Any) -> XComArg:
        return _PartialFactory(self, {}).expand(**mapped)


class _PartialFactory:
    def __init__(self, factory: TaskFactory, fixed: dict[str, Any]):
        self.factory = factory
        self.fixed = fixed

    def expand(self, **mapped: Any) -> XComArg:
        f = self.factory
        if _context.current_dag() is None:
            raise DagDefinitionError(f"@task {f._task_id!r} was expanded outside a DAG")
        t = MappedTask(f._task_id, f.fn, expand=mapped, kwargs=self.fixed, _auto_id=True, **f._options())
        return XComArg(t)


class _TaskDecorator:
    """``@task``, ``@task(**options)``, ``@task.branch`` and ``@task.sensor(...)``."""

    def __call__(self, fn: Callable[..., Any] | None = None, **options: Any) -> Any:
        if fn is None:
            return lambda f: TaskFactory(f, options)
        return TaskFactory(fn, options)

    def branch(self, fn: Callable[..., Any] | None = None, **options: Any) -> Any:
        """The function returns the id (or list of ids) of the direct downstream tasks to follow."""
        options["is_branch"] = True
        return self(fn, **options)

    def sensor(self, fn: Callable[..., Any] | None = None, **options: Any) -> Any:
        """The function is a poke: it returns True (or a `PokeResult`) when the condition holds."""
        from engine.orchestration.sensors import PythonSensor

        if fn is None:
            return lambda f: TaskFactory(f, options, PythonSensor)
        return TaskFactory(fn, options, PythonSensor)


task = _TaskDecorator()


def dag(fn: Callable[..., Any] | None = None, **dag_options: Any) -> Any:
    """Decorate a function that defines tasks; calling it returns the built, validated `DAG`.

    The DAG id defaults to the function name; the function's keyword arguments become ``params``.
    """
    from engine.orchestration.dag import DAG

    def decorate(f: Callable[..., Any]) -> Callable[..., DAG]:
        @functools.wraps(f)
        def build(*args: Any, **kwargs: Any) -> DAG:
            options = dict(dag_options)
            dag_id = options.pop("dag_id", f.__name__)
            if options.get("description") is None and f.__doc__:
                options["description"] = f.__doc__.strip().splitlines()[0]
            with DAG(dag_id, **options) as d:
                f(*args, **kwargs)
            return d

        return build

    return decorate(fn) if fn is not None else decorate
