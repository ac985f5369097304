"""aiohttp application factories: health, readiness, metrics and each service's routes.

`make_service_app(service)` serves one service; `make_platform_app(registry)` serves every service of
a process plus the status page (`engine.services.status`). Both give:

- ``GET /health`` (200 when every service is alive, 503 otherwise), ``GET /ready`` (200/503),
  ``GET /metrics`` (Prometheus text format);
- the services' own routes (`Route`), e.g. serving's ``/records``;
- safety: routes marked ``protected`` (mutating and admin endpoints) require
  ``Authorization: Bearer <token>`` when a token is configured (401 without it, 403 when wrong);
  request bodies are capped at ``max_body_bytes`` (413); handler errors become JSON
  ``{"error": message}`` with 400 for bad input (`RequestError`), 404 for unknown resources and 500
  (logged, never a crash) for bugs.

Binding to 127.0.0.1 is the default of `serve_app`; exposing a service is an explicit choice.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable

import msgspec
from aiohttp import web

from engine.errors import ServiceError
from engine.services.metrics import render_prometheus

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1 << 20
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_json = msgspec.json.Encoder()
TOKEN_KEY = web.AppKey("engine_token", object)
REGISTRY_KEY = web.AppKey("engine_registry", object)


class RequestError(ServiceError):
    """Bad input from an HTTP client; rendered as ``status`` (400 by default) with the message."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class NotFoundError(RequestError):
    def __init__(self, message: str):
        super().__init__(message, status=404)


@dataclass(frozen=True)
class Route:
    """One HTTP endpoint a service contributes. ``protected`` = needs the bearer token when configured."""

    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    protected: bool = False


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=_json.encode(data), status=status, content_type="application/json")


def error_response(status: int, message: str) -> web.Response:
    return json_response({"error": message, "status": status}, status=status)


async def read_json(request: web.Request) -> Any:
    """The request body as JSON; 400 if it is not JSON, 413 if over the app's body limit."""
    body = await request.read()  # raises 413 beyond the app's client_max_size
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise RequestError(f"request body is not valid JSON: {exc}") from None


def query_int(request: web.Request, name: str, default: int, minimum: int, maximum: int) -> int:
    """An integer query parameter within [minimum, maximum]; 400 naming the parameter otherwise."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise RequestError(f"query parameter {name!r} must be an integer, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise RequestError(f"query parameter {name!r} must be between {minimum} and {maximum}, got {value}")
    return value


@web.middleware
async def _errors_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except RequestError as exc:
        return error_response(exc.status, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason if exc.text is None or exc.text.startswith(str(exc.status))
                              else exc.text)
    except Exception:
        logger.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal error (logged on the server)")


def _protect(handler, token_holder: dict):
    async def guarded(request: web.Request):
        token = token_holder.get("token")
        if token:
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer "):
                response = error_response(401, "this endpoint needs 'Authorization: Bearer <token>'")
                response.headers["WWW-Authenticate"] = 'Bearer realm="engine"'
                return response
            if not hmac.compare_digest(header[7:].strip().encode(), token.encode()):
                return error_response(403, "invalid bearer token")
        return await handler(request)

    return guarded


def _base_app(services: list, token: str | None, max_body_bytes: int) -> web.Application:
    if max_body_bytes < 1:
        raise ServiceError(f"max_body_bytes must be >= 1, got {max_body_bytes}")
    app = web.Application(middlewares=[_errors_middleware], client_max_size=max_body_bytes)
    holder = {"token": token}
    app[TOKEN_KEY] = holder

    async def health(request):
        reports = [s.health() for s in services]
        ok = all(r["healthy"] for r in reports)
        return json_response({"healthy": ok, "services": reports}, status=200 if ok else 503)

    async def ready(request):
        states = {s.name: s.ready() for s in services}
        ok = all(states.values())
        return json_response({"ready": ok, "services": states}, status=200 if ok else 503)

    async def metrics(request):
        for s in services:  # lag is sampled at scrape time rather than on every batch
            lag = s.lag()
            if lag is not None:  # services without an input subscription have no lag series
                s.metrics.gauge("engine_service_input_lag",
                                "Envelopes waiting on the service's input channels.").set(lag)
        return web.Response(text=render_prometheus(s.metrics for s in services),
                            headers={"Content-Type": PROMETHEUS_CONTENT_TYPE})

    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
    taken: dict[tuple[str, str], str] = {}
    for service in services:
        prefix = getattr(service, "http_prefix", "") or ""
        for route in service.routes():
            key = (route.method, prefix + route.path)
            if key in taken:
                raise ServiceError(f"services {taken[key]!r} and {service.name!r} both serve {key[0]} {key[1]}; "
                                   "give one of them an http_prefix (e.g. '/orders')")
            taken[key] = service.name
        add_routes(app, service.routes(), holder, prefix)
    return app


def add_routes(app: web.Application, routes: Iterable[Route], holder: dict | None = None, prefix: str = "") -> None:
    """Add ``routes`` under ``prefix``, guarding the protected ones with the app's bearer token."""
    if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
        raise ServiceError(f"http_prefix must start with '/' and not end with one, got {prefix!r}")
    holder = holder if holder is not None else app[TOKEN_KEY]
    for route in routes:
        handler = _protect(route.handler, holder) if route.protected else route.handler
        app.router.add_route(route.method, prefix + route.path, handler)


def make_service_app(service, *, token: str | None = None,
                     max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> web.Application:
    """An app for one service: /health, /ready, /metrics and the service's routes."""
    return _base_app([service], token, max_body_bytes)


def make_platform_app(registry, *, token: str | None = None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                      flows_provider: Callable[[], list[dict]] | None = None,
                      dag_runs_provider: Callable[[], list[dict]] | None = None,
                      title: str = "engine platform",
                      subapps: dict[str, web.Application] | None = None) -> web.Application:
    """An app for every service in ``registry`` plus the status page at ``/`` and ``/api/status``.

    ``flows_provider`` / ``dag_runs_provider`` feed the page's "Flows" (name, watermark, ...) and
    "Recent DAG runs" sections; each returns a list of flat dicts (the dataflow runtime and the
    orchestration layer plug in here). ``subapps`` mounts other aiohttp apps under a prefix, e.g. the
    contracts layer's schema-registry API: ``subapps={"/schemas": registry_app}``.
    """
    from engine.services import status

    app = _base_app(list(registry), token, max_body_bytes)
    app[REGISTRY_KEY] = registry
    status.add_status_routes(app, registry, flows_provider=flows_provider,
                             dag_runs_provider=dag_runs_provider, title=title)
    for prefix, subapp in (subapps or {}).items():
        app.add_subapp(prefix, subapp)
    return app


class AppServer:
    """A running aiohttp app on host:port (``port=0`` picks a free port; see `port` after start)."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 0):
        self.app = app
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> "AppServer":
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.requested_port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise ServiceError(f"cannot listen on {self.host}:{self.requested_port}: {exc}") from exc
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc):
        await self.stop()


async def serve_app(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> AppServer:
    """Start ``app`` on ``host:port`` (loopback by default) and return the running `AppServer`."""
    return await AppServer(app, host, port).start()
