"""The `Service` base: lifecycle, graceful drain, health and readiness, metrics, structured logs.

Lifecycle: ``created -> starting -> running -> draining -> stopped`` (or ``failed``). ``start()`` runs
the subclass's `on_start` (open stores, subscribe, spawn background tasks); ``stop()`` runs `on_stop`
(subclasses stop consuming and let the batch in hand finish), then cancels what is left. A background
task spawned with `spawn` that dies with an exception marks the service ``failed``: health reports it
(the process keeps serving HTTP so an operator can see why).

Health is liveness ("is it broken?"); readiness is "should it get traffic?" (running and every
dependency check passes). Log records carry ``extra`` fields (``service``, ``event``, ...) that
`engine.services.logs.JsonFormatter` renders as JSON lines.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable

from engine.errors import ServiceError
from engine.services.metrics import Metrics, RateMeter

logger = logging.getLogger(__name__)

STATES = ("created", "starting", "running", "draining", "stopped", "failed")


class Service:
    """Base class of every platform service. Subclasses override `on_start`/`on_stop` and may add
    readiness checks (`add_check`) and HTTP routes (`routes`)."""

    kind = "service"

    def __init__(self, name: str):
        if not name or not isinstance(name, str):
            raise ServiceError(f"a service needs a non-empty name, got {name!r}")
        self.name = name
        self.http_prefix = ""  # where the platform app mounts this service's routes
        self.state = "created"
        self.error: str | None = None
        self.started_at: float | None = None
        self.metrics = Metrics({"service": name})
        self.throughput = RateMeter()
        self._tasks: set[asyncio.Task] = set()
        self._checks: dict[str, Callable[[], bool]] = {}
        self._subscriptions: list = []
        self.records_in = self.metrics.counter("engine_service_records_in_total", "Records received by the service.")
        self.records_out = self.metrics.counter("engine_service_records_out_total", "Records emitted by the service.")
        self.errors = self.metrics.counter("engine_service_errors_total", "Errors raised while processing.")
        self.up = self.metrics.gauge("engine_service_up", "1 while the service is running and healthy.")
        self.batch_latency = self.metrics.histogram("engine_service_batch_seconds", "Time to process one batch.")

    # --- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self.state not in ("created", "stopped"):
            raise ServiceError(f"service {self.name!r} cannot start from state {self.state!r}")
        self.state = "starting"
        self.error = None
        self._subscriptions = []
        self._log(logging.INFO, "starting", "service.starting")
        try:
            await self.on_start()
        except BaseException as exc:
            self.state = "failed"
            self.error = f"{type(exc).__name__}: {exc}"
            self._log(logging.ERROR, "failed to start: %s" % self.error, "service.start_failed")
            await self._cancel_tasks()
            raise
        self.state = "running"
        self.started_at = time.time()
        self.up.set(1)
        self._log(logging.INFO, "running", "service.running")

    async def stop(self, timeout: float = 10.0) -> None:
        """Drain gracefully (finish the work in hand, within ``timeout`` seconds), then stop. Idempotent."""
        if self.state in ("created", "stopped"):
            self.state = "stopped"
            return
        was_failed = self.state == "failed"
        self.state = "draining"
        self._log(logging.INFO, "draining", "service.draining")
        try:
            await asyncio.wait_for(self.on_stop(timeout), timeout + 1.0)
        except asyncio.TimeoutError:
            self._log(logging.WARNING, "drain timed out; cancelling", "service.drain_timeout")
        finally:
            await self._cancel_tasks()
            self.up.set(0)
            self.state = "failed" if was_failed else "stopped"
            self._log(logging.INFO, "stopped", "service.stopped")

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc):
        await self.stop()

    async def on_start(self) -> None:
        """Open resources and begin work. Raise to refuse to start."""

    async def on_stop(self, timeout: float) -> None:
        """Stop taking new work and finish the work in hand."""

    # --- background tasks -------------------------------------------------------------------------------

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task:
        """Run ``coro`` in the background; if it raises, the service becomes ``failed``."""
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def watch(self, subscription) -> None:
        """Mark this service failed if ``subscription``'s consume loop dies (e.g. the broker is gone)."""

        def done(task: asyncio.Task) -> None:
            if task.cancelled() or self.state in ("draining", "stopped"):
                return
            exc = task.exception()
            if exc is not None:
                self.fail(f"subscription {subscription.channel}/{subscription.group}: {type(exc).__name__}: {exc}")

        subscription._task.add_done_callback(done)
        self._subscriptions.append(subscription)

    def lag(self) -> int | None:
        """Envelopes waiting on this service's input subscriptions (None when it has none or unknown)."""
        lags = [lag for lag in (s.lag() for s in self._subscriptions if s.running) if lag is not None]
        return sum(lags) if lags else None

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.fail(f"{task.get_name()}: {type(exc).__name__}: {exc}")

    def fail(self, reason: str) -> None:
        """Mark the service failed (health turns red) and log why."""
        self.state = "failed"
        self.error = reason
        self.up.set(0)
        self.errors.inc()
        self._log(logging.ERROR, f"failed: {reason}", "service.failed")

    async def _cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- health ---------------------------------------------------------------------------------------

    def add_check(self, name: str, check: Callable[[], bool]) -> None:
        """Register a readiness check (a callable returning True when the dependency is usable)."""
        self._checks[name] = check

    def healthy(self) -> bool:
        return self.state in ("created", "starting", "running", "draining", "stopped") and self.error is None

    def ready(self) -> bool:
        return self.state == "running" and all(self._run_check(c) for c in self._checks.values())

    @staticmethod
    def _run_check(check: Callable[[], bool]) -> bool:
        try:
            return bool(check())
        except Exception:
            logger.warning("readiness check raised", exc_info=True)
            return False

    def health(self) -> dict[str, Any]:
        """A JSON-ready health report: state, liveness, readiness, checks, counters."""
        return {
            "name": self.name,
            "kind": self.kind,
            "state": self.state,
            "healthy": self.healthy(),
            "ready": self.ready(),
            "error": self.error,
            "checks": {name: self._run_check(c) for name, c in self._checks.items()},
            "records_in": int(self.records_in.value),
            "records_out": int(self.records_out.value),
            "throughput": round(self.throughput.rate(), 2),
            "lag": self.lag(),
            "summary": self.summary(),
            "uptime_s": None if self.started_at is None else round(time.time() - self.started_at, 1),
            **self.details(),
        }

    def summary(self) -> str:
        """One line for the status page (what this service has done so far)."""
        return ""

    def details(self) -> dict[str, Any]:
        """Extra service-specific fields for the health report."""
        return {}

    def routes(self) -> list:
        """aiohttp route definitions this service adds to its HTTP app (see engine.services.http)."""
        return []

    # --- logging --------------------------------------------------------------------------------------

    def _log(self, level: int, message: str, event: str, **fields: Any) -> None:
        logger.log(level, "%s %s: %s", self.kind, self.name, message,
                   extra={"service": self.name, "kind": self.kind, "event": event, **fields})

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.state}>"
