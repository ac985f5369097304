"""The Confluent Schema Registry REST API (the subset clients use) over a `SchemaRegistry`, on aiohttp.

Endpoints: ``GET /subjects``, ``GET|POST /subjects/{s}/versions``, ``GET|DELETE
/subjects/{s}/versions/{v|latest}`` (+ ``/schema``), ``POST /subjects/{s}`` (lookup), ``DELETE
/subjects/{s}``, ``GET /schemas/ids/{id}`` (+ ``/schema``, ``/versions``, ``/subjects``),
``GET /schemas/guids/{guid}``, ``GET /schemas/types``, ``POST /compatibility/subjects/{s}/versions[/{v}]``,
``GET|PUT|DELETE /config`` and ``/config/{s}``, ``GET /mode``. Errors are ``{"error_code", "message"}``
with Confluent's codes (40401 subject, 40402 version, 40403 schema not found, 42201 invalid schema,
42202 invalid version, 42203 invalid compatibility level, 409 incompatible, 50001 storage); responses
use the content type ``application/vnd.schemaregistry.v1+json``.

`open_registry_server` serves inside a running event loop (an async context manager);
`RegistryServerThread` serves from a background thread for synchronous programs and tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from typing import Any, AsyncIterator

from aiohttp import web

from engine.contracts.errors import IncompatibleSchemaError, SchemaRegistryError
from engine.contracts.registry import SCHEMA_TYPES, RegisteredSchema, SchemaRegistry

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
_REGISTRY = web.AppKey("registry", SchemaRegistry)


def _reply(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type=CONTENT_TYPE)


def _error(status: int, code: int, message: str) -> web.Response:
    return _reply({"error_code": code, "message": message}, status)


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "false").lower() == "true"


@web.middleware
async def _errors(request: web.Request, handler):
    try:
        return await handler(request)
    except IncompatibleSchemaError as exc:
        return _error(409, 409, str(exc))
    except SchemaRegistryError as exc:
        return _error(exc.http_status, exc.error_code, str(exc))
    except web.HTTPException as exc:
        if exc.status >= 400:
            return _error(exc.status, exc.status, exc.reason)
        raise
    except Exception:
        logger.exception("schema registry request %s %s failed", request.method, request.path)
        return _error(500, 50001, "Error in the backend data store")


async def _body(request: web.Request) -> dict:
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise SchemaRegistryError("Request body is not valid JSON", error_code=400, http_status=400) from None
    if not isinstance(body, dict):
        raise SchemaRegistryError("Request body must be a JSON object", error_code=400, http_status=400)
    return body


def _schema_args(body: dict) -> tuple[str, str, list]:
    schema = body.get("schema")
    if not isinstance(schema, str):
        raise SchemaRegistryError("Invalid schema: the request needs a 'schema' string", error_code=42201,
                                  http_status=422)
    schema_type = body.get("schemaType") or "AVRO"
    if str(schema_type).upper() not in SCHEMA_TYPES:
        raise SchemaRegistryError(f"Invalid schema type {schema_type!r}; supported: {', '.join(SCHEMA_TYPES)}",
                                  error_code=42201, http_status=422)
    references = body.get("references") or []
    if references:
        raise SchemaRegistryError("Invalid schema: schema references are not supported by this registry",
                                  error_code=42201, http_status=422)
    return schema, str(schema_type).upper(), references


def _schema_fields(reg: RegisteredSchema) -> dict[str, Any]:
    out: dict[str, Any] = {"schema": reg.schema}
    if reg.schema_type != "AVRO":
        out["schemaType"] = reg.schema_type  # Confluent omits the type for Avro
    if reg.references:
        out["references"] = list(reg.references)
    return out


def _version_doc(reg: RegisteredSchema) -> dict[str, Any]:
    return {"subject": reg.subject, "version": reg.version, "id": reg.id, "guid": reg.guid, **_schema_fields(reg)}


def _registry(request: web.Request) -> SchemaRegistry:
    return request.app[_REGISTRY]


# ------------------------------------------------------------------------------------ subjects
async def list_subjects(request):
    prefix = request.query.get("subjectPrefix", "")
    return _reply(_registry(request).subjects(_flag(request, "deleted"), prefix))


async def list_versions(request):
    return _reply(_registry(request).versions(request.match_info["subject"], _flag(request, "deleted")))


async def register(request):
    schema, schema_type, refs = _schema_args(await _body(request))
    reg = _registry(request).register(request.match_info["subject"], schema, schema_type, refs)
    return _reply({"id": reg.id, "version": reg.version, "subject": reg.subject, "guid": reg.guid,
                   **_schema_fields(reg)})


async def get_version(request):
    reg = _registry(request).get_version(request.match_info["subject"], request.match_info["version"],
                                         _flag(request, "deleted"))
    return _reply(_version_doc(reg))


async def get_version_schema(request):
    reg = _registry(request).get_version(request.match_info["subject"], request.match_info["version"],
                                         _flag(request, "deleted"))
    return web.Response(text=reg.schema, content_type=CONTENT_TYPE)


async def lookup(request):
    schema, schema_type, _ = _schema_args(await _body(request))
    reg = _registry(request).lookup(request.match_info["subject"], schema, schema_type, _flag(request, "deleted"))
    return _reply(_version_doc(reg))


async def delete_subject(request):
    return _reply(_registry(request).delete_subject(request.match_info["subject"], _flag(request, "permanent")))


async def delete_version(request):
    return _reply(_registry(request).delete_version(request.match_info["subject"], request.match_info["version"],
                                                    _flag(request, "permanent")))


# ------------------------------------------------------------------------------------- schemas
def _schema_id(request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise SchemaRegistryError(f"Schema {request.match_info['id']} not found", error_code=40403,
                                  http_status=404) from None


async def get_schema(request):
    return _reply(_schema_fields(_registry(request).get_schema(_schema_id(request))))


async def get_schema_text(request):
    return web.Response(text=_registry(request).get_schema(_schema_id(request)).schema, content_type=CONTENT_TYPE)


async def get_schema_by_guid(request):
    reg = _registry(request).get_schema_by_guid(request.match_info["guid"])
    return _reply({"id": reg.id, **_schema_fields(reg)})


async def schema_versions(request):
    versions = _registry(request).subject_versions_for_id(_schema_id(request), _flag(request, "deleted"))
    return _reply([{"subject": v.subject, "version": v.version} for v in versions])


async def schema_subjects(request):
    versions = _registry(request).subject_versions_for_id(_schema_id(request), _flag(request, "deleted"))
    return _reply(sorted({v.subject for v in versions}))


async def schema_types(request):
    return _reply(list(SCHEMA_TYPES))


# ------------------------------------------------------------------------------- compatibility
async def _compatibility(request, version):
    schema, schema_type, _ = _schema_args(await _body(request))
    registry = _registry(request)
    subject = request.match_info["subject"]
    if version is None and subject not in registry.subjects():
        problems = []  # nothing registered yet: anything is compatible
    else:
        problems = registry.check(subject, schema, schema_type, version)
    body: dict[str, Any] = {"is_compatible": not problems}
    if _flag(request, "verbose"):
        body["messages"] = [str(p) for p in problems]
    return _reply(body)


async def compatibility_version(request):
    return await _compatibility(request, request.match_info["version"])


async def compatibility_all(request):
    return await _compatibility(request, None)


# -------------------------------------------------------------------------------------- config
async def get_global_config(request):
    return _reply({"compatibilityLevel": _registry(request).get_compatibility()})


async def put_global_config(request):
    body = await _body(request)
    return _reply({"compatibility": _registry(request).set_compatibility(body.get("compatibility"))})


async def delete_global_config(request):
    return _reply({"compatibilityLevel": _registry(request).delete_compatibility()})


async def get_subject_config(request):
    subject = request.match_info["subject"]
    level = _registry(request).get_compatibility(subject, default_to_global=_flag(request, "defaultToGlobal"))
    if level is None:
        raise SchemaRegistryError(f"Subject '{subject}' does not have subject-level compatibility configured",
                                  error_code=40408, http_status=404)
    return _reply({"compatibilityLevel": level})


async def put_subject_config(request):
    body = await _body(request)
    level = _registry(request).set_compatibility(body.get("compatibility"), request.match_info["subject"])
    return _reply({"compatibility": level})


async def delete_subject_config(request):
    return _reply({"compatibilityLevel": _registry(request).delete_compatibility(request.match_info["subject"])})


async def get_mode(request):
    return _reply({"mode": "READWRITE"})


async def referenced_by(request):
    # schema references are not supported, so nothing refers to any version; 40401/40402 still apply
    _registry(request).get_version(request.match_info["subject"], request.match_info["version"])
    return _reply([])


async def contexts(request):
    return _reply(["."])


async def root(request):
    return _reply({})


def create_app(registry: SchemaRegistry) -> web.Application:
    """The aiohttp application serving ``registry``."""
    app = web.Application(middlewares=[_errors])
    app[_REGISTRY] = registry
    r = app.router
    r.add_get("/", root)
    r.add_get("/subjects", list_subjects)
    r.add_get("/subjects/{subject}/versions", list_versions)
    r.add_post("/subjects/{subject}/versions", register)
    r.add_get("/subjects/{subject}/versions/{version}", get_version)
    r.add_get("/subjects/{subject}/versions/{version}/schema", get_version_schema)
    r.add_delete("/subjects/{subject}/versions/{version}", delete_version)
    r.add_post("/subjects/{subject}", lookup)
    r.add_delete("/subjects/{subject}", delete_subject)
    r.add_get("/schemas/types", schema_types)
    r.add_get("/schemas/ids/{id}", get_schema)
    r.add_get("/schemas/ids/{id}/schema", get_schema_text)
    r.add_get("/schemas/ids/{id}/versions", schema_versions)
    r.add_get("/schemas/ids/{id}/subjects", schema_subjects)
    r.add_get("/schemas/guids/{guid}", get_schema_by_guid)
    r.add_post("/compatibility/subjects/{subject}/versions/{version}", compatibility_version)
    r.add_post("/compatibility/subjects/{subject}/versions", compatibility_all)
    r.add_get("/config", get_global_config)
    r.add_put("/config", put_global_config)
    r.add_delete("/config", delete_global_config)
    r.add_get("/config/{subject}", get_subject_config)
    r.add_put("/config/{subject}", put_subject_config)
    r.add_delete("/config/{subject}", delete_subject_config)
    r.add_get("/subjects/{subject}/versions/{version}/referencedby", referenced_by)
    r.add_get("/mode", get_mode)
    r.add_get("/mode/{subject}", get_mode)
    r.add_get("/contexts", contexts)
    return app


@contextlib.asynccontextmanager
async def open_registry_server(registry: SchemaRegistry, host: str = "127.0.0.1", port: int = 8081
                               ) -> AsyncIterator[str]:
    """Serve ``registry`` until the block exits; yields the base URL (``port=0`` picks a free port)."""
    runner = web.AppRunner(create_app(registry), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    url = f"http://{host}:{bound}"
    logger.info("schema registry listening on %s", url)
    try:
        yield url
    finally:
        await runner.cleanup()


class RegistryServerThread:
    """Serve a registry from a background thread (its own event loop); for synchronous callers.

    Use as a context manager, or call `start` / `stop`. ``url`` is the base URL once started.
    """

    def __init__(self, registry: SchemaRegistry, host: str = "127.0.0.1", port: int = 0):
        self.registry = registry
        self.host = host
        self.port = port
        self.url: str | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> str:
        self._thread = threading.Thread(target=self._run, name="schema-registry", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        if self.url is None:
            raise SchemaRegistryError("the schema registry server did not start within 30 s")
        return self.url

    def _run(self) -> None:
        async def main():
            self._stop = asyncio.Event()
            try:
                async with open_registry_server(self.registry, self.host, self.port) as url:
                    self.url = url
                    self._ready.set()
                    await self._stop.wait()
            except BaseException as exc:  # reported to the starting thread
                self._error = exc
                self._ready.set()

        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(main())
        finally:
            self._loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

    def __enter__(self) -> RegistryServerThread:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
