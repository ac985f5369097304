"""The orchestration DAG-runs provider reads the metadata database read-only and bounded.

The table below mirrors ``dag_runs`` of engine/orchestration/store.py (the columns the provider reads)."""

import sqlite3

import aiohttp
import pytest

from engine.errors import ServiceError
from engine.services.config import parse_config
from engine.services.platform import Platform
from engine.services.providers import orchestration_runs_provider

DAG_RUNS = """CREATE TABLE dag_runs (dag_id TEXT NOT NULL, run_id TEXT NOT NULL, run_type TEXT NOT NULL,
    logical_date TEXT NOT NULL, interval_start TEXT, interval_end TEXT, state TEXT NOT NULL,
    conf TEXT NOT NULL DEFAULT '{}', triggering_events TEXT NOT NULL DEFAULT '[]', created_at TEXT NOT NULL,
    started_at TEXT, ended_at TEXT, PRIMARY KEY (dag_id, run_id), UNIQUE (dag_id, logical_date))"""


def make_db(path, runs=30):
    conn = sqlite3.connect(path)
    conn.execute(DAG_RUNS)
    conn.executemany("INSERT INTO dag_runs (dag_id, run_id, run_type, logical_date, state, created_at) "
                     "VALUES (?, ?, 'scheduled', ?, ?, ?)",
                     [("nightly", f"run-{i:02d}", f"2026-11-{1 + i % 28:02d}T{i:02d}:00:00+00:00",
                       "success" if i % 5 else "failed", f"2026-11-26T10:{i:02d}:00+00:00") for i in range(runs)])
    conn.commit()
    conn.close()


def test_recent_runs_newest_first_and_bounded(tmp_path):
    make_db(tmp_path / "meta.db")
    runs = orchestration_runs_provider(tmp_path / "meta.db", limit=3)()
    assert [r["run_id"] for r in runs] == ["run-29", "run-28", "run-27"]
    assert runs[0]["dag_id"] == "nightly" and runs[0]["state"] == "success"
    with pytest.raises(ServiceError, match="no orchestration metadata database"):
        orchestration_runs_provider(tmp_path / "missing.db")()
    (tmp_path / "other.db").write_bytes(b"")
    with pytest.raises(ServiceError, match="cannot read DAG runs"):
        orchestration_runs_provider(tmp_path / "other.db")()


async def test_platform_status_shows_dag_runs_from_the_configured_database(tmp_path):
    make_db(tmp_path / "meta.db", runs=4)
    config = parse_config({"http": {"port": 0}, "status": {"dag_runs_db": "meta.db", "recent_dag_runs": 2},
                           "services": [{"kind": "serving", "name": "s", "input": "v", "database": ":memory:"}]},
                          base_dir=tmp_path)
    async with Platform(config) as platform:
        async with aiohttp.ClientSession(base_url=platform.url) as http:
            async with http.get("/api/status") as resp:
                status = await resp.json()
            async with http.get("/") as resp:
                page = await resp.text()
    assert [r["run_id"] for r in status["dag_runs"]] == ["run-03", "run-02"]
    assert 'id="dag-runs-table"' in page and "run-03" in page and "run-01" not in page
