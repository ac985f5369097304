"""The status page (``GET /``, plain server-rendered HTML, no build step) and ``GET /api/status`` (JSON).

It shows every service (kind, state, health, readiness, records in/out, recent throughput, last error)
and two sections fed by provider callables: "Flows" (running dataflows and their watermarks, from the
runtime) and "Recent DAG runs" (from the orchestration layer). A provider returns a list of flat
dicts (one row each; keys become columns); a provider that raises shows its error instead of rows.
The page refreshes itself every ``refresh_s`` seconds.

``services_provider`` (optional, async) replaces the local registry snapshot: the supervisor of a
one-process-per-service platform uses it to show its children's health.
"""

from __future__ import annotations

import html
import logging
import time
from typing import Any, Awaitable, Callable

from aiohttp import web

from engine.services.http import json_response

logger = logging.getLogger(__name__)

Provider = Callable[[], list[dict[str, Any]]]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: left; }
th { background: #f2f2f2; }
.ok { color: #176c1f; font-weight: 600; } .bad { color: #b3261e; font-weight: 600; }
.muted { color: #777; }
"""


def _cell(value: Any) -> str:
    if value is True:
        return '<span class="ok">yes</span>'
    if value is False:
        return '<span class="bad">no</span>'
    if value is None:
        return '<span class="muted">-</span>'
    return html.escape(str(value))


def _table(table_id: str, columns: list[str], rows: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        f'<tr data-name="{html.escape(str(row.get(columns[0], "")))}">'
        + "".join(f'<td class="col-{html.escape(c)}">{_cell(row.get(c))}</td>' for c in columns) + "</tr>"
        for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _provided(provider: Provider | None) -> tuple[list[dict[str, Any]] | None, str | None]:
    if provider is None:
        return None, None
    try:
        rows = list(provider())
    except Exception as exc:
        logger.warning("status provider failed", exc_info=True)
        return None, f"{type(exc).__name__}: {exc}"
    return [dict(r) for r in rows], None


def _section(title: str, section_id: str, rows, error, empty: str) -> str:
    out = f'<h2>{html.escape(title)}</h2><div id="{section_id}">'
    if error is not None:
        out += f'<p class="bad">unavailable: {html.escape(error)}</p>'
    elif rows is None:
        out += '<p class="muted">not connected</p>'
    elif not rows:
        out += f'<p class="muted">{html.escape(empty)}</p>'
    else:
        columns: list[str] = []
        for row in rows:
            columns.extend(k for k in row if k not in columns)
        out += _table(f"{section_id}-table", columns, rows)
    return out + "</div>"


SERVICE_COLUMNS = ["name", "kind", "state", "healthy", "ready", "records_in", "records_out", "throughput", "lag",
                   "summary", "error"]


def render_status_page(title: str, services: list[dict[str, Any]], flows, flows_error, runs, runs_error,
                       refresh_s: int = 5) -> str:
    healthy = all(s.get("healthy") for s in services)
    ready = all(s.get("ready") for s in services)
    rows = [{**s, "throughput": f"{s.get('throughput', 0):.1f}/s"} for s in services]
    generated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{int(refresh_s)}"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f'<p id="summary">Platform: <span id="platform-health" class="{"ok" if healthy else "bad"}">'
        f'{"healthy" if healthy else "unhealthy"}</span>, <span id="platform-ready">'
        f'{"ready" if ready else "not ready"}</span>; {len(services)} services; generated {generated}</p>'
        f"<h2>Services</h2>{_table('services', SERVICE_COLUMNS, rows)}"
        + _section("Flows", "flows", flows, flows_error, "no running flows")
        + _section("Recent DAG runs", "dag-runs", runs, runs_error, "no recent DAG runs")
        + '<p class="muted">Machine-readable: <a href="/api/status">/api/status</a>, '
          '<a href="/metrics">/metrics</a>, <a href="/health">/health</a></p></body></html>')


def add_status_routes(app: web.Application, registry, *, flows_provider: Provider | None = None,
                      dag_runs_provider: Provider | None = None, title: str = "engine platform",
                      services_provider: Callable[[], Awaitable[list[dict[str, Any]]]] | None = None,
                      refresh_s: int = 5) -> None:
    async def services() -> list[dict[str, Any]]:
        if services_provider is not None:
            return await services_provider()
        return registry.snapshot()

    async def page(request: web.Request) -> web.Response:
        flows, flows_error = _provided(flows_provider)
        runs, runs_error = _provided(dag_runs_provider)
        text = render_status_page(title, await services(), flows, flows_error, runs, runs_error, refresh_s)
        return web.Response(text=text, content_type="text/html")

    async def api(request: web.Request) -> web.Response:
        flows, flows_error = _provided(flows_provider)
        runs, runs_error = _provided(dag_runs_provider)
        items = await services()
        return json_response({"title": title, "healthy": all(s.get("healthy") for s in items),
                              "ready": all(s.get("ready") for s in items), "services": items,
                              "flows": flows, "flows_error": flows_error,
                              "dag_runs": runs, "dag_runs_error": runs_error})

    app.router.add_get("/", page)
    app.router.add_get("/api/status", api)
