"""Persistent run metadata in SQLite: DAG runs, task instances, tries, results, dataset events.

The default is a file (``engine-orchestration.db``); ``":memory:"`` keeps everything in the process.
Writes are *group-committed*: task-instance updates are coalesced in memory (a task that goes
scheduled -> running -> success between two commits is written once) and flushed in one transaction by
`commit`. The scheduler commits before it starts any task whose upstream changed, so a success is
durable before anything downstream of it can run; that, with WAL journaling, is what makes crash
resume exact for finished tasks.

Timestamps are stored as ISO-8601 UTC strings; results and extras as JSON (msgspec).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import msgspec

from engine.orchestration.datasets import DatasetEvent
from engine.orchestration.exceptions import OrchestrationError

logger = logging.getLogger(__name__)

DEFAULT_DB = "engine-orchestration.db"
_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dag_runs (
    dag_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    run_type TEXT NOT NULL,
    logical_date TEXT NOT NULL,
    interval_start TEXT,
    interval_end TEXT,
    state TEXT NOT NULL,
    conf TEXT NOT NULL DEFAULT '{}',
    triggering_events TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL,
    started_at TEXT,
    ended_at TEXT,
    PRIMARY KEY (dag_id, run_id),
    UNIQUE (dag_id, logical_date)
);
CREATE INDEX IF NOT EXISTS dag_runs_state ON dag_runs (state);
CREATE TABLE IF NOT EXISTS task_instances (
    dag_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    map_index INTEGER NOT NULL,
    state TEXT NOT NULL,
    try_number INTEGER NOT NULL DEFAULT 0,
    first_started_at TEXT,
    started_at TEXT,
    ended_at TEXT,
    result TEXT,
    error TEXT,
    PRIMARY KEY (dag_id, run_id, task_id, map_index)
);
CREATE TABLE IF NOT EXISTS task_tries (
    dag_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    map_index INTEGER NOT NULL,
    try_number INTEGER NOT NULL,
    state TEXT NOT NULL,
    started_at TEXT,
    ended_at TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS task_tries_ti ON task_tries (dag_id, run_id, task_id, map_index);
CREATE TABLE IF NOT EXISTS dag_state (
    dag_id TEXT PRIMARY KEY,
    last_interval_start TEXT,
    last_interval_end TEXT
);
CREATE TABLE IF NOT EXISTS dataset_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uri TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    extra TEXT NOT NULL DEFAULT '{}',
    source_dag_id TEXT,
    source_run_id TEXT,
    source_task_id TEXT
);
CREATE INDEX IF NOT EXISTS dataset_events_uri ON dataset_events (uri, id);
CREATE TABLE IF NOT EXISTS dataset_queue (
    dag_id TEXT NOT NULL,
    event_id INTEGER NOT NULL,
    PRIMARY KEY (dag_id, event_id)
);
"""


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is timezone.utc:
        return value.isoformat()
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r} cannot be stored; use an aware datetime")
    return value.astimezone(timezone.utc).isoformat()


def from_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def encode_json(value: Any) -> str:
    return _json_encode(value).decode()


def decode_json(text: str | None) -> Any:
    return None if text is None else _json_decode(text)


@dataclass
class DagRunRecord:
    dag_id: str
    run_id: str
    run_type: str  # scheduled | manual | backfill | dataset
    logical_date: datetime
    interval_start: datetime | None
    interval_end: datetime | None
    state: str
    conf: dict[str, Any] = field(default_factory=dict)
    triggering_events: list[dict[str, Any]] = field(default_factory=list)
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None


@dataclass
class TaskInstanceRecord:
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    state: str
    try_number: int = 0
    first_started_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    result: str | None = None  # JSON text
    error: str | None = None

    def row(self) -> tuple[Any, ...]:
        return (self.dag_id, self.run_id, self.task_id, self.map_index, self.state, self.try_number,
                iso(self.first_started_at), iso(self.started_at), iso(self.ended_at), self.result, self.error)




class MetadataStore:
    """SQLite-backed metadata. Not thread-safe: one scheduler (one event loop) owns it."""

    def __init__(self, path: str | Path = DEFAULT_DB):
        self.path = str(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise OrchestrationError(f"cannot open the metadata database {self.path!r}: {exc}") from exc
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable against a killed process with WAL (only an OS crash may lose the tail).
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._pending_ti: dict[tuple[str, str, str, int], TaskInstanceRecord] = {}
        self._pending_sql: list[tuple[str, tuple[Any, ...]]] = []
        self._pending_tries: list[tuple[Any, ...]] = []
        self._transient_ti: dict[Any, Any] = {}
        self._lock_file: Any = None

    def close(self) -> None:
        self.commit(include_transient=True)
        self._db.close()
        self.release_scheduler_lock()

    # -- one scheduler per database ---------------------------------------------------------------
    def acquire_scheduler_lock(self) -> None:
        """Hold an exclusive lock on ``<db>.lock`` while a scheduler owns this database file.

        Two schedulers resuming the same runs would run their tasks twice. The lock is an OS file lock
        (``flock``): it is released when the process dies, even by SIGKILL, so crash resume works.
        Other processes may still read the database and queue runs (``engine dags trigger``).
        Raises `OrchestrationError` naming the holder's pid when another scheduler has it.
        """
        if self.path == ":memory:" or self._lock_file is not None:
            return
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no protection against a second scheduler
            return
        lock = open(self.path + ".lock", "a+")  # noqa: SIM115 - held until release
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.seek(0)
            owner = lock.read().strip() or "unknown"
            lock.close()
            raise OrchestrationError(
                f"another scheduler (pid {owner}) is running on {self.path}; stop it first, or queue runs "
                "with `engine dags trigger` and let it execute them"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        self._lock_file = lock

    def release_scheduler_lock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # closing the file releases the flock
            self._lock_file = None

    # -- transactions ---------------------------------------------------------------------------
    def commit(self, *, include_transient: bool = False) -> None:
        """Flush the buffered writes in one transaction.

        Transient task-instance states (queued, running; see `put_task_instance`) are included only
        with ``include_transient`` or when the same instance also has a durable change pending.
        """
        if include_transient and self._transient_ti:
            for key, value in self._transient_ti.items():
                self._pending_ti.setdefault(key, value)
            self._transient_ti.clear()
        if not self._pending_ti and not self._pending_sql and not self._pending_tries:
            return
        db = self._db
        db.execute("BEGIN")
        try:
            for sql, params in self._pending_sql:
                db.execute(sql, params)
            if self._pending_tries:
                db.executemany(
                    "INSERT INTO task_tries (dag_id, run_id, task_id, map_index, try_number, state, started_at, ended_at,"
                    " error) VALUES (?,?,?,?,?,?,?,?,?)",
                    self._pending_tries,
                )
            if self._pending_ti:
                db.executemany(
                    "INSERT INTO task_instances (dag_id, run_id, task_id, map_index, state, try_number, first_started_at,"
                    " started_at, ended_at, result, error) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
                    " ON CONFLICT (dag_id, run_id, task_id, map_index) DO UPDATE SET state=excluded.state,"
                    " try_number=excluded.try_number, first_started_at=excluded.first_started_at,"
                    " started_at=excluded.started_at, ended_at=excluded.ended_at, result=excluded.result, error=excluded.error",
                    [v.row() for v in self._pending_ti.values()],
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._pending_ti.clear()
        self._pending_sql.clear()
        self._pending_tries.clear()

    @property
    def dirty(self) -> bool:
        """Whether writes are buffered and not yet committed."""
        return bool(self._pending_ti or self._pending_sql or self._pending_tries or self._transient_ti)

    def _later(self, sql: str, params: tuple[Any, ...]) -> None:
        self._pending_sql.append((sql, params))

    # -- runs -----------------------------------------------------------------------------------
    def create_run(self, run: DagRunRecord, *, consume_events: Iterable[int] = ()) -> None:
        """Insert a run now (not buffered), refusing a duplicate run id or logical date at once.

        ``consume_events`` removes those dataset events from the DAG's queue in the same transaction,
        so a dataset-triggered run and the consumption of its events are durable together.
        """
        self.commit()
        db = self._db
        db.execute("BEGIN")
        try:
            db.execute(
                "INSERT INTO dag_runs (dag_id, run_id, run_type, logical_date, interval_start, interval_end, state, conf,"
                " triggering_events, created_at, started_at, ended_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (run.dag_id, run.run_id, run.run_type, iso(run.logical_date), iso(run.interval_start), iso(run.interval_end),
                 run.state, encode_json(run.conf), encode_json(run.triggering_events), iso(run.created_at),
                 iso(run.started_at), iso(run.ended_at)),
            )
            db.executemany("DELETE FROM dataset_queue WHERE dag_id=? AND event_id=?", [(run.dag_id, e) for e in consume_events])
            db.execute("COMMIT")
        except sqlite3.IntegrityError:
            db.execute("ROLLBACK")
            raise OrchestrationError(
                f"DAG {run.dag_id!r} already has a run {run.run_id!r} or a run for logical date {iso(run.logical_date)}"
            ) from None
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def update_run(self, dag_id: str, run_id: str, **fields: Any) -> None:
        cols, params = [], []
        for name, value in fields.items():
            if name not in {"state", "started_at", "ended_at", "triggering_events"}:
                raise ValueError(name)
            cols.append(f"{name}=?")
            if name == "triggering_events":
                value = encode_json(value)
            elif isinstance(value, datetime):
                value = iso(value)
            params.append(value)
        self._later(f"UPDATE dag_runs SET {', '.join(cols)} WHERE dag_id=? AND run_id=?", (*params, dag_id, run_id))

    def _run_from_row(self, row: tuple[Any, ...]) -> DagRunRecord:
        return DagRunRecord(
            dag_id=row[0], run_id=row[1], run_type=row[2], logical_date=from_iso(row[3]),  # type: ignore[arg-type]
            interval_start=from_iso(row[4]), interval_end=from_iso(row[5]), state=row[6], conf=decode_json(row[7]),
            triggering_events=decode_json(row[8]), created_at=from_iso(row[9]), started_at=from_iso(row[10]),
            ended_at=from_iso(row[11]),
        )

    _RUN_COLS = ("dag_id, run_id, run_type, logical_date, interval_start, interval_end, state, conf, triggering_events,"
                 " created_at, started_at, ended_at")

    def get_run(self, dag_id: str, run_id: str) -> DagRunRecord | None:
        self.commit()
        row = self._db.execute(f"SELECT {self._RUN_COLS} FROM dag_runs WHERE dag_id=? AND run_id=?", (dag_id, run_id)).fetchone()
        return self._run_from_row(row) if row else None

    def run_for_logical_date(self, dag_id: str, logical_date: datetime) -> DagRunRecord | None:
        self.commit()
        row = self._db.execute(
            f"SELECT {self._RUN_COLS} FROM dag_runs WHERE dag_id=? AND logical_date=?", (dag_id, iso(logical_date))
        ).fetchone()
        return self._run_from_row(row) if row else None

    def list_runs(self, dag_id: str | None = None, states: Iterable[str] | None = None) -> list[DagRunRecord]:
        self.commit()
        sql = f"SELECT {self._RUN_COLS} FROM dag_runs"
        where, params = [], []
        if dag_id is not None:
            where.append("dag_id=?")
            params.append(dag_id)
        if states is not None:
            states = list(states)
            where.append(f"state IN ({','.join('?' * len(states))})")
            params.extend(states)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY logical_date, created_at"
        return [self._run_from_row(r) for r in self._db.execute(sql, params)]

    def delete_task_instances(self, dag_id: str, run_id: str, task_ids: Iterable[str]) -> None:
        for task_id in task_ids:
            self._later("DELETE FROM task_instances WHERE dag_id=? AND run_id=? AND task_id=?", (dag_id, run_id, task_id))
            for pending in (self._pending_ti, self._transient_ti):
                for key, value in list(pending.items()):
                    if value.row()[:3] == (dag_id, run_id, task_id):
                        del pending[key]

    # -- task instances -------------------------------------------------------------------------
    def put_task_instance(self, record: Any, *, transient: bool = False) -> None:
        """Buffer the current state of a task instance (upserted at the next commit).

        ``record`` is a `TaskInstanceRecord`, or any object with the same ``row()`` method (the
        scheduler's live task instance); it is read only at commit time, so a task instance that
        changes state several times between two commits costs one row write.

        A ``transient`` state (queued, running) matters for observing a run but not for resuming it
        (a resumed scheduler re-runs such an instance either way), so it is written at the next
        ``commit(include_transient=True)`` (the scheduler's idle flush) rather than on the hot path.
        """
        key = (record.dag_id, record.run_id, record.task_id, record.map_index) if isinstance(record, TaskInstanceRecord) else record
        if transient:
            if key not in self._pending_ti:
                self._transient_ti[key] = record
            return
        self._transient_ti.pop(key, None)
        self._pending_ti[key] = record

    def task_instances(self, dag_id: str, run_id: str) -> list[TaskInstanceRecord]:
        self.commit()
        rows = self._db.execute(
            "SELECT dag_id, run_id, task_id, map_index, state, try_number, first_started_at, started_at, ended_at, result, error"
            " FROM task_instances WHERE dag_id=? AND run_id=? ORDER BY task_id, map_index",
            (dag_id, run_id),
        )
        return [
            TaskInstanceRecord(r[0], r[1], r[2], r[3], r[4], r[5], from_iso(r[6]), from_iso(r[7]), from_iso(r[8]), r[9], r[10])
            for r in rows
        ]

    def record_try(self, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int, state: str,
                   started_at: datetime | None, ended_at: datetime | None, error: str | None) -> None:
        self._pending_tries.append(
            (dag_id, run_id, task_id, map_index, try_number, state, iso(started_at), iso(ended_at), error)
        )

    def tries(self, dag_id: str, run_id: str, task_id: str | None = None) -> list[dict[str, Any]]:
        self.commit()
        sql = ("SELECT task_id, map_index, try_number, state, started_at, ended_at, error FROM task_tries"
               " WHERE dag_id=? AND run_id=?")
        params: list[Any] = [dag_id, run_id]
        if task_id is not None:
            sql += " AND task_id=?"
            params.append(task_id)
        sql += " ORDER BY rowid"
        keys = ("task_id", "map_index", "try_number", "state", "started_at", "ended_at", "error")
        return [dict(zip(keys, r)) for r in self._db.execute(sql, params)]

    # -- schedule bookkeeping -------------------------------------------------------------------
    def last_interval(self, dag_id: str) -> tuple[datetime, datetime] | None:
        self.commit()
        row = self._db.execute("SELECT last_interval_start, last_interval_end FROM dag_state WHERE dag_id=?", (dag_id,)).fetchone()
        if not row or row[0] is None:
            return None
        return from_iso(row[0]), from_iso(row[1])  # type: ignore[return-value]

    def set_last_interval(self, dag_id: str, start: datetime, end: datetime) -> None:
        self._later(
            "INSERT INTO dag_state (dag_id, last_interval_start, last_interval_end) VALUES (?,?,?)"
            " ON CONFLICT (dag_id) DO UPDATE SET last_interval_start=excluded.last_interval_start,"
            " last_interval_end=excluded.last_interval_end",
            (dag_id, iso(start), iso(end)),
        )

    # -- datasets -------------------------------------------------------------------------------
    def add_dataset_event(self, uri: str, timestamp: datetime, extra: dict[str, Any], consumers: Iterable[str], *,
                          source_dag_id: str | None = None, source_run_id: str | None = None,
                          source_task_id: str | None = None) -> None:
        """Record an event and queue it for every consumer DAG, in the next commit's transaction.

        Buffered like task-instance updates, so a producing task's success and its dataset events are
        durable together or not at all.
        """
        self._later(
            "INSERT INTO dataset_events (uri, timestamp, extra, source_dag_id, source_run_id, source_task_id)"
            " VALUES (?,?,?,?,?,?)",
            (uri, iso(timestamp), encode_json(extra), source_dag_id, source_run_id, source_task_id),
        )
        consumers = list(consumers)
        if consumers:
            # One writer owns the database, so the newest event id is the one just inserted.
            self._later(
                "INSERT INTO dataset_queue (dag_id, event_id) SELECT value, (SELECT MAX(id) FROM dataset_events)"
                " FROM json_each(?)",
                (encode_json(consumers),),
            )

    def _event(self, row: tuple[Any, ...]) -> DatasetEvent:
        return DatasetEvent(row[0], row[1], row[2], decode_json(row[3]), row[4], row[5], row[6])

    def queued_dataset_events(self, dag_id: str) -> list[DatasetEvent]:
        self.commit()
        rows = self._db.execute(
            "SELECT e.id, e.uri, e.timestamp, e.extra, e.source_dag_id, e.source_run_id, e.source_task_id"
            " FROM dataset_queue q JOIN dataset_events e ON e.id = q.event_id WHERE q.dag_id=? ORDER BY e.id",
            (dag_id,),
        )
        return [self._event(r) for r in rows]

    def consume_dataset_events(self, dag_id: str, event_ids: Iterable[int]) -> None:
        for event_id in event_ids:
            self._later("DELETE FROM dataset_queue WHERE dag_id=? AND event_id=?", (dag_id, event_id))

    def dataset_events(self, uri: str | None = None, *, after_id: int = 0, since: datetime | None = None) -> list[DatasetEvent]:
        self.commit()
        sql = "SELECT id, uri, timestamp, extra, source_dag_id, source_run_id, source_task_id FROM dataset_events WHERE id > ?"
        params: list[Any] = [after_id]
        if uri is not None:
            sql += " AND uri=?"
            params.append(uri)
        if since is not None:
            sql += " AND timestamp >= ?"
            params.append(iso(since))
        sql += " ORDER BY id"
        return [self._event(r) for r in self._db.execute(sql, params)]
