"""Build and run a configured set of services: `Platform` (in this process) and `Supervisor`
(one child process per service, for ``mode: per-service``).

`Platform` creates the bus and the services from a `PlatformConfig`, declares every consumer group on
the in-memory bus (so start order cannot lose envelopes), starts consumers before producers, serves the
platform HTTP app (status page, health, metrics, every service's routes) and stops in pipeline order:
producers first, so each stage drains what the previous one published, then the HTTP server and the bus.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import aiohttp
from aiohttp import web

from engine.errors import ServiceError
from engine.services import config as cfg
from engine.services.bus import EventBus, InMemoryBus, KafkaBus
from engine.services.http import AppServer, make_platform_app
from engine.services.ingestion import IngestionService, jsonl_source
from engine.services.providers import orchestration_runs_provider
from engine.services.quality import QualityService
from engine.services.registry import ServiceRegistry
from engine.services.serving import ServingService
from engine.services.status import add_status_routes
from engine.services.transformation import LookupStep, MapStep, TransformationService, resolve_transform

logger = logging.getLogger(__name__)

# Start consumers before producers; stop in the reverse order.
_START_ORDER = {"serving": 0, "quality": 1, "transformation": 2, "ingestion": 3}


def make_bus(config: cfg.PlatformConfig) -> EventBus:
    bus = config.bus
    if isinstance(bus, cfg.KafkaBusConfig):
        return KafkaBus(bus.bootstrap_servers, topic_prefix=bus.topic_prefix, partitions=bus.partitions,
                        replication_factor=bus.replication_factor,
                        client_id=bus.client_id, consumer_options=bus.consumer_options,
                        producer_options=bus.producer_options, client_options=bus.client_options)
    return InMemoryBus(max_retained=bus.max_retained)


def _load_callable(ref: str):
    module_name, _, attr = ref.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise cfg.ConfigError(f"cannot load {ref!r}: {exc}") from None


def _consumer_settings(sc) -> dict[str, Any]:
    return {"max_batch": sc.max_batch, "max_attempts": sc.max_attempts, "dedup_window": sc.dedup_window}


def make_service(config: cfg.PlatformConfig, sc, bus: EventBus):
    """One service instance from its config entry."""
    if isinstance(sc, cfg.IngestionConfig):
        source = None
        if sc.source is not None:
            if sc.source.type == "jsonl":
                path = config.path(sc.source.path)
                source = lambda: jsonl_source(path)  # noqa: E731 - a fresh reader per start
            else:
                source = _load_callable(sc.source.callable)
        service = IngestionService(sc.name, bus, sc.output, source=source, id_field=sc.id_field,
                                   time_field=sc.time_field, schema_id=sc.schema_id, key_field=sc.key_field,
                                   batch_size=sc.batch_size,
                                   linger_ms=sc.linger_ms)
    elif isinstance(sc, cfg.TransformationConfig):
        steps = []
        for step in sc.steps:
            if step.transform is not None:
                steps.append(MapStep(*resolve_transform(step.transform)))
            else:
                lookup = step.lookup
                if lookup.file is not None:
                    import msgspec
                    lookup = msgspec.structs.replace(lookup, file=str(config.path(lookup.file)))
                steps.append(LookupStep(lookup))
        service = TransformationService(sc.name, bus, sc.input, sc.output, steps=steps, dead_letter=sc.dead_letter,
                                        **_consumer_settings(sc))
    elif isinstance(sc, cfg.QualityConfig):
        rules = list(sc.rules)
        if sc.contract is not None:
            from engine.contracts import load_contract
            from engine.services.rules import rules_from_contract

            rules += rules_from_contract(load_contract(config.path(sc.contract)))
        service = QualityService(sc.name, bus, sc.input, sc.output, rules=rules, quarantine=sc.quarantine,
                                 alerts=sc.alerts, database=config.database_for(sc),
                                 alert_threshold=sc.alert_threshold, window_ms=sc.window_ms,
                                 window_lateness_ms=sc.window_lateness_ms, alert_cooldown_ms=sc.alert_cooldown_ms,
                                 **_consumer_settings(sc))
    elif isinstance(sc, cfg.ServingConfig):
        service = ServingService(sc.name, bus, sc.input, database=config.database_for(sc), indexes=sc.indexes,
                                 on_conflict=sc.on_conflict, cache_ttl_ms=sc.cache_ttl_ms,
                                 cache_max_entries=sc.cache_max_entries, default_limit=sc.default_limit,
                                 max_limit=sc.max_limit, **_consumer_settings(sc))
    else:  # pragma: no cover - the config union is closed
        raise ServiceError(f"unknown service config {sc!r}")
    service.http_prefix = sc.http_prefix
    return service


class Platform:
    """The configured services of one process, their bus and their HTTP server.

    ``only`` restricts it to some service names (one-process-per-service mode runs one each).
    ``port`` overrides the HTTP port (0 = any free port). Use ``async with Platform(...)`` or
    ``start()``/``stop()``; ``url`` is the HTTP base address once started.
    """

    def __init__(self, config: cfg.PlatformConfig, *, only: list[str] | None = None, port: int | None = None,
                 bus: EventBus | None = None, flows_provider: Callable | None = None,
                 dag_runs_provider: Callable | None = None, subapps: dict[str, web.Application] | None = None):
        self.config = config
        self.token = config.http.resolve_token()
        selected = [config.service(n) for n in only] if only else list(config.services)
        self.service_configs = sorted(selected, key=lambda s: _START_ORDER[s.kind])
        self.bus = bus if bus is not None else make_bus(config)
        self.registry = ServiceRegistry()
        for sc in self.service_configs:
            self.registry.register(make_service(config, sc, self.bus))
        self.port = config.http.port if port is None else port
        if dag_runs_provider is None and config.status.dag_runs_db:
            dag_runs_provider = orchestration_runs_provider(config.path(config.status.dag_runs_db),
                                                            config.status.recent_dag_runs)
        self.flows_provider, self.dag_runs_provider = flows_provider, dag_runs_provider
        self.subapps = subapps
        self.server: AppServer | None = None
        self._owns_bus = bus is None

    def service(self, name: str):
        return self.registry.get(name)

    @property
    def url(self) -> str:
        if self.server is None:
            raise ServiceError("the platform is not started")
        return self.server.url

    async def start(self) -> "Platform":
        if self._owns_bus:
            await self.bus.start()
        if isinstance(self.bus, InMemoryBus):
            for sc in self.config.services:
                if hasattr(sc, "input"):
                    self.bus.declare_group(sc.input, sc.name)
        started = []

        async def start_one(service):
            await service.start()
            started.append(service)

        try:
            # Consumers join their groups concurrently (a Kafka group join takes seconds), then producers.
            consumers = [s for s in self.registry if s.kind != "ingestion"]
            results = await asyncio.gather(*(start_one(s) for s in consumers), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            for service in self.registry:
                if service.kind == "ingestion":
                    await start_one(service)
            app = make_platform_app(self.registry, token=self.token, max_body_bytes=self.config.http.max_body_bytes,
                                    flows_provider=self.flows_provider, dag_runs_provider=self.dag_runs_provider,
                                    title=self.config.name, subapps=self.subapps)
            self.server = await AppServer(app, self.config.http.host, self.port).start()
        except BaseException:
            for service in reversed(started):
                await service.stop(self.config.shutdown_timeout_s)
            if self._owns_bus:
                await self.bus.close()
            raise
        logger.info("platform %r serving %d services on %s", self.config.name, len(self.registry), self.url,
                    extra={"event": "platform.started", "url": self.url})
        return self

    async def stop(self) -> None:
        """Stop producers first so every stage drains what the previous one published.

        On the in-memory bus (not durable: what is still on it when the process exits is gone) each
        consumer first works off its input backlog, for up to ``shutdown_timeout_s``; on Kafka the
        backlog simply stays on the topics for the next start.
        """
        loop = asyncio.get_running_loop()
        for service in reversed(list(self.registry)):
            if isinstance(self.bus, InMemoryBus) and service.state == "running" and hasattr(service, "input"):
                deadline = loop.time() + self.config.shutdown_timeout_s
                while self.bus.backlog(service.input, service.group) > 0 and loop.time() < deadline \
                        and service.state == "running":
                    await asyncio.sleep(0.01)
                left = self.bus.backlog(service.input, service.group)
                if left:
                    logger.warning("%s %r stops with %d envelopes unconsumed on %r", service.kind, service.name,
                                   left, service.input, extra={"event": "platform.drain_incomplete"})
            await service.stop(self.config.shutdown_timeout_s)
        if self.server is not None:
            await self.server.stop()
        if self._owns_bus:
            await self.bus.close()
        logger.info("platform %r stopped", self.config.name, extra={"event": "platform.stopped"})

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc):
        await self.stop()


async def run_until_signalled(awaitable_start, stop) -> None:
    """Run ``awaitable_start()``, wait for SIGTERM/SIGINT, then ``await stop()``."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stopping.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix loops
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stopping.set))
    await awaitable_start()
    try:
        await stopping.wait()
    finally:
        await stop()


class Supervisor:
    """``mode: per-service``: one child process per service (``engine serve FILE --service NAME``),
    each with its own HTTP port (``http_port``, default ``http.port + 1 + index``), plus a status app
    on ``http.port`` that shows every child's health, pid and restart count.

    A child that exits on its own is restarted after a backoff (1 s, doubling up to ``max_backoff_s``);
    it resumes from its consumer group's committed offsets, and the idempotent stores absorb the
    redelivered batch. SIGTERM is forwarded on stop; children drain and exit.
    """

    def __init__(self, config: cfg.PlatformConfig, config_path: str | Path, *, port: int | None = None,
                 max_backoff_s: float = 30.0):
        self.config = config
        self.config_path = str(config_path)
        self.port = config.http.port if port is None else port
        self.max_backoff_s = max_backoff_s
        self.children: dict[str, subprocess.Popen] = {}
        self.restarts: dict[str, int] = {}
        self.ports = {sc.name: self.child_port(i, sc) for i, sc in enumerate(config.services)}
        self.server: AppServer | None = None
        self._stopping = False
        self._monitor: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None

    def child_port(self, index: int, sc) -> int:
        return sc.http_port if sc.http_port is not None else self.config.http.port + 1 + index

    def _spawn(self, name: str) -> None:
        argv = [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())",
                "serve", self.config_path, "--service", name, "--port", str(self.ports[name])]
        self.children[name] = subprocess.Popen(argv, env=os.environ.copy())
        logger.info("started service process %r (pid %d)", name, self.children[name].pid,
                    extra={"service": name, "event": "supervisor.spawned"})

    async def _watch_children(self) -> None:
        loop = asyncio.get_running_loop()
        restart_at: dict[str, float] = {}
        while not self._stopping:
            for name, child in list(self.children.items()):
                code = child.poll()
                if code is None or self._stopping:
                    continue
                if name not in restart_at:
                    delay = min(self.max_backoff_s, 2.0 ** self.restarts.get(name, 0))
                    restart_at[name] = loop.time() + delay
                    logger.error("service process %r exited with %s; restarting in %.0f s", name, code, delay,
                                 extra={"service": name, "event": "supervisor.child_exited", "code": code})
                elif loop.time() >= restart_at[name]:
                    del restart_at[name]
                    self.restarts[name] = self.restarts.get(name, 0) + 1
                    self._spawn(name)
            await asyncio.sleep(0.2)

    async def _remote_services(self) -> list[dict[str, Any]]:
        out = []
        for name, port in self.ports.items():
            child = self.children[name]
            extra = {"pid": child.pid, "restarts": self.restarts.get(name, 0)}
            try:
                async with self._session.get(f"http://{self.config.http.host}:{port}/api/status") as resp:
                    for row in (await resp.json())["services"]:
                        restarted = f"; restarted {extra['restarts']}x" if extra["restarts"] else ""
                        out.append({**row, **extra, "summary": (row.get("summary") or "") + restarted})
            except Exception as exc:
                out.append({"name": name, "kind": self.config.service(name).kind,
                            "state": "exited" if child.poll() is not None else "unreachable",
                            "healthy": False, "ready": False, "error": f"{type(exc).__name__}: {exc}",
                            "throughput": 0.0, **extra})
        return out

    async def start(self) -> "Supervisor":
        self._stopping = False
        for sc in self.config.services:
            self._spawn(sc.name)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
        app = web.Application()
        add_status_routes(app, ServiceRegistry(), title=self.config.name, services_provider=self._remote_services)
        self.server = await AppServer(app, self.config.http.host, self.port).start()
        self._monitor = asyncio.get_running_loop().create_task(self._watch_children(), name="supervisor")
        return self

    async def stop(self) -> None:
        self._stopping = True
        if self._monitor is not None:
            self._monitor.cancel()
            await asyncio.gather(self._monitor, return_exceptions=True)
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = asyncio.get_running_loop().time() + self.config.shutdown_timeout_s + 5
        for name, child in self.children.items():
            while child.poll() is None and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            if child.poll() is None:
                logger.warning("service process %r did not exit; killing it", name)
                child.kill()
                child.wait()
        if self.server is not None:
            await self.server.stop()
        if self._session is not None:
            await self._session.close()
