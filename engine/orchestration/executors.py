"""Executors: where a task attempt's callable runs, behind one interface.

- `AsyncioExecutor` (the default, named ``"default"``): in the scheduler's process. Coroutine
  functions are awaited on the event loop; plain functions run in a thread pool so they do not block
  the loop (and other tasks).
- `ProcessPoolExecutor` (register it as e.g. ``"process"``): for CPU-bound tasks. The callable, its
  arguments and its result are pickled, so the callable must be importable by the worker processes
  (a module-level function of an importable module). Coroutine functions run with ``asyncio.run``
  in the worker.

Timeouts are applied by the scheduler around ``run``. A timed-out attempt is marked failed at once; a
thread or worker process cannot be interrupted, so its work continues in the background until it
returns (its result is discarded).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import multiprocessing
import weakref
from typing import Any, Callable


class Executor:
    """Runs one call of a task callable and returns its result (or raises its exception)."""

    name = "executor"

    async def start(self) -> None:
        pass

    async def run(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError

    async def shutdown(self) -> None:
        pass


class AsyncioExecutor(Executor):
    name = "asyncio"

    def __init__(self, max_threads: int | None = None):
        self._max_threads = max_threads
        self._threads: concurrent.futures.ThreadPoolExecutor | None = None
        # Callables are checked once (a weak cache: DAG callables come and go with their DAGs).
        self._is_async: "weakref.WeakKeyDictionary[Any, bool]" = weakref.WeakKeyDictionary()

    async def run(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            is_async = self._is_async.get(fn)
            if is_async is None:
                is_async = self._is_async[fn] = inspect.iscoroutinefunction(fn)
        except TypeError:  # not weak-referenceable (e.g. a callable with __slots__)
            is_async = inspect.iscoroutinefunction(fn)
        if is_async:
            return await fn(*args, **kwargs)
        if self._threads is None:
            self._threads = concurrent.futures.ThreadPoolExecutor(self._max_threads, thread_name_prefix="engine-task")
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._threads, functools.partial(fn, *args, **kwargs))
        if inspect.isawaitable(result):  # a plain function that returned a coroutine
            result = await result
        return result

    async def shutdown(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None


def _call_in_worker(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        async def _await() -> Any:
            return await result

        result = asyncio.run(_await())
    return result


class ProcessPoolExecutor(Executor):
    name = "process"

    def __init__(self, max_workers: int | None = None, mp_context: str = "spawn"):
        self._max_workers = max_workers
        self._mp_context = mp_context
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    async def start(self) -> None:
        if self._pool is None:
            ctx = multiprocessing.get_context(self._mp_context)
            self._pool = concurrent.futures.ProcessPoolExecutor(self._max_workers, mp_context=ctx)

    async def run(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        await self.start()
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, _call_in_worker, fn, args, kwargs)

    async def shutdown(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.get_running_loop().run_in_executor(None, functools.partial(pool.shutdown, wait=True, cancel_futures=True))
