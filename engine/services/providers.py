"""Status-page providers that read other layers' state without importing them.

`orchestration_runs_provider` lists the most recent DAG runs from the orchestration layer's SQLite
metadata database (table ``dag_runs``), opened read-only per call and bounded by ``limit``, so the
status page never writes to or locks the scheduler's database.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Callable

from engine.errors import ServiceError

_RUN_COLUMNS = ("dag_id", "run_id", "run_type", "state", "logical_date", "started_at", "ended_at")


def orchestration_runs_provider(path: str | Path, limit: int = 20) -> Callable[[], list[dict[str, Any]]]:
    """A ``dag_runs_provider`` for the status page: the newest ``limit`` runs, newest first."""
    if limit < 1:
        raise ServiceError(f"limit must be >= 1, got {limit}")
    db_path = Path(path)

    def recent_runs() -> list[dict[str, Any]]:
        if not db_path.is_file():
            raise ServiceError(f"no orchestration metadata database at {db_path}")
        conn = sqlite3.connect(f"file:{db_path.resolve()}?mode=ro", uri=True)
        try:
            rows = conn.execute(f"SELECT {', '.join(_RUN_COLUMNS)} FROM dag_runs "
                                "ORDER BY created_at DESC LIMIT ?", (limit,)).fetchall()
        except sqlite3.Error as exc:
            raise ServiceError(f"cannot read DAG runs from {db_path}: {exc}") from None
        finally:
            conn.close()
        return [dict(zip(_RUN_COLUMNS, row)) for row in rows]

    return recent_runs


def dataflow_provider(*flows: Any) -> Callable[[], list[dict[str, Any]]]:
    """A ``flows_provider`` for the status page: one row per `engine.Dataflow` run in this process, with
    its state, record counts, late records and watermark (the minimum over its steps, as an int ms)."""

    def rows() -> list[dict[str, Any]]:
        out = []
        for flow in flows:
            run = getattr(flow, "_last_run", None)
            metrics = flow.metrics()
            watermarks = [m["watermark"] for m in metrics.values() if m.get("kind") != "sink" and "watermark" in m]
            out.append({
                "flow": flow.name,
                "state": getattr(run, "state", "not started"),
                "records_in": sum(m["records_in"] for m in metrics.values() if m.get("kind") == "source"),
                "records_out": sum(m["records_in"] for m in metrics.values() if m.get("kind") == "sink"),
                "late_records": sum(m.get("late_records", 0) for m in metrics.values()),
                "watermark": min(watermarks) if watermarks else None,
            })
        return out

    return rows
