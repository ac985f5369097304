"""The serving store: validated records in SQLite, indexed on declared fields, paged by cursor.

Table layout (one table, default ``records``): ``seq`` (insertion order, the pagination key), ``id``
(the envelope id, UNIQUE: the idempotence guarantee), ``source``, ``time``, ``schema_id``, ``headers``
and ``payload`` (JSON), plus one column ``f_<field>`` per declared index field with an index on
``(f_<field>, seq)`` so a filtered page is an index range scan. Declaring a new field on an existing
database adds and back-fills the column.

Writes are idempotent: ``on_conflict="ignore"`` (default) keeps the first version of an id, so a
redelivered batch stores nothing twice; ``"latest"`` replaces a stored record only with one whose
event time is not older (redelivery of an old version cannot roll a record back).
"""

from __future__ import annotations

import base64
import binascii
import sqlite3
from pathlib import Path
from typing import Any, Sequence

import msgspec

from engine.errors import ServiceError
from engine.services.envelope import Envelope
from engine.services.sqlite import check_identifier, connect

FIELD_TYPES = {"text": "TEXT", "integer": "INTEGER", "real": "REAL"}

_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.decode


class QueryError(ServiceError):
    """A query the store refuses (unknown field, bad value or cursor); the message says why."""


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float)):
        return value
    if isinstance(value, bool):
        return int(value)
    return _json_encode(value).decode()  # nested values are indexed by their JSON text


class RecordStore:
    """Records keyed by envelope id. Not thread-safe: use it from one event loop."""

    def __init__(self, path: str | Path = ":memory:", *, indexes: dict[str, str] | Sequence[str] = (),
                 table: str = "records", on_conflict: str = "ignore", synchronous: str = "FULL"):
        self.path = str(path)
        if isinstance(indexes, dict):
            fields = dict(indexes)
        else:
            fields = {name: "text" for name in indexes}
        for name, kind in fields.items():
            check_identifier("index field", name)
            if kind not in FIELD_TYPES:
                raise ServiceError(f"index field {name!r}: type must be one of {sorted(FIELD_TYPES)}, got {kind!r}")
        if on_conflict not in ("ignore", "latest"):
            raise ServiceError(f"on_conflict must be 'ignore' or 'latest', got {on_conflict!r}")
        self.indexes = fields
        self.table = check_identifier("table name", table)
        self.on_conflict = on_conflict
        self.synchronous = synchronous
        self._conn: sqlite3.Connection | None = None

    # --- lifecycle ------------------------------------------------------------------------------------

    def open(self) -> "RecordStore":
        if self._conn is not None:
            return self
        conn = connect(self.path, self.synchronous)
        t = self.table
        conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{t}" (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, '
            "source TEXT NOT NULL, time INTEGER NOT NULL, schema_id TEXT, headers TEXT NOT NULL, "
            "payload TEXT NOT NULL)")
        # An exact row count maintained by triggers, so health reports never scan the table.
        has_stats = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                 (f"{t}_stats",)).fetchone()
        if not has_stats:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(f'CREATE TABLE "{t}_stats" (n INTEGER NOT NULL)')
            conn.execute(f'INSERT INTO "{t}_stats" (n) SELECT count(*) FROM "{t}"')
            conn.execute(f'CREATE TRIGGER "{t}_count_insert" AFTER INSERT ON "{t}" '
                         f'BEGIN UPDATE "{t}_stats" SET n = n + 1; END')
            conn.execute(f'CREATE TRIGGER "{t}_count_delete" AFTER DELETE ON "{t}" '
                         f'BEGIN UPDATE "{t}_stats" SET n = n - 1; END')
            conn.execute("COMMIT")
        existing = {row[1] for row in conn.execute(f'PRAGMA table_info("{t}")')}
        for name, kind in self.indexes.items():
            column = f"f_{name}"
            if column not in existing:
                conn.execute(f'ALTER TABLE "{t}" ADD COLUMN "{column}" {FIELD_TYPES[kind]}')
                conn.execute(f'UPDATE "{t}" SET "{column}" = json_extract(payload, ?)', (f'$."{name}"',))
            conn.execute(f'CREATE INDEX IF NOT EXISTS "ix_{t}_{name}" ON "{t}" ("{column}", seq)')
        conn.execute(f'CREATE INDEX IF NOT EXISTS "ix_{t}__time" ON "{t}" (time, seq)')
        self._conn = conn
        columns = ["id", "source", "time", "schema_id", "headers", "payload"] + [f'"f_{n}"' for n in self.indexes]
        placeholders = ", ".join("?" for _ in columns)
        insert = f'INSERT INTO "{t}" ({", ".join(columns)}) VALUES ({placeholders})'
        if self.on_conflict == "ignore":
            self._insert = insert.replace("INSERT", "INSERT OR IGNORE", 1)
        else:
            updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
            self._insert = f'{insert} ON CONFLICT(id) DO UPDATE SET {updates} WHERE excluded.time >= "{t}".time'
        return self

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ServiceError(f"record store {self.path!r} is not open")
        return self._conn

    # --- writes ---------------------------------------------------------------------------------------

    def put_many(self, envelopes: Sequence[Envelope]) -> int:
        """Store ``envelopes`` in one transaction; returns how many rows were inserted or updated."""
        db = self._db()
        rows = []
        for env in envelopes:
            payload = env.payload
            rows.append((env.id, env.source, env.time, env.schema_id, _json_encode(env.headers).decode(),
                         _json_encode(payload).decode(), *(_scalar(payload.get(n)) for n in self.indexes)))
        if not rows:
            return 0
        db.execute("BEGIN IMMEDIATE")
        try:
            # rowcount sums sqlite3_changes() over the rows: inserted/updated rows, not trigger writes
            written = db.executemany(self._insert, rows).rowcount
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return written

    def delete(self, record_id: str) -> bool:
        cur = self._db().execute(f'DELETE FROM "{self.table}" WHERE id = ?', (record_id,))
        return cur.rowcount > 0

    # --- reads ----------------------------------------------------------------------------------------

    @staticmethod
    def _row(row) -> dict[str, Any]:
        return {"id": row[0], "source": row[1], "time": row[2], "schema_id": row[3],
                "headers": _json_decode(row[4]), "payload": _json_decode(row[5])}

    def get(self, record_id: str) -> dict[str, Any] | None:
        row = self._db().execute(
            f'SELECT id, source, time, schema_id, headers, payload FROM "{self.table}" WHERE id = ?',
            (record_id,)).fetchone()
        return None if row is None else self._row(row)

    def count(self) -> int:
        """Number of stored records (O(1): kept by triggers)."""
        return self._db().execute(f'SELECT n FROM "{self.table}_stats"').fetchone()[0]

    def ids(self) -> list[str]:
        return [r[0] for r in self._db().execute(f'SELECT id FROM "{self.table}" ORDER BY seq')]

    def convert(self, field: str, raw: str) -> Any:
        """A query-string value converted to the declared type of ``field`` (QueryError if it cannot)."""
        kind = self.indexes.get(field)
        if kind is None:
            known = ", ".join(sorted(self.indexes)) or "none declared"
            raise QueryError(f"cannot filter on {field!r}: not an indexed field (indexed: {known})")
        try:
            if kind == "integer":
                return int(raw)
            if kind == "real":
                return float(raw)
        except ValueError:
            raise QueryError(f"filter {field!r} expects a{'n' if kind == 'integer' else ''} {kind} value, "
                             f"got {raw!r}") from None
        return raw

    def query(self, filters: dict[str, Any], limit: int, cursor: str | None = None, *, order: str = "asc",
              since: int | None = None, until: int | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """Records matching every ``field == value`` filter (indexed fields only) and, when given, the
        event-time range ``since <= time < until``, in insertion order (``order="desc"``: newest first).

        Returns at most ``limit`` records and the cursor of the next page (None on the last page). A
        cursor only continues a query in the direction it was issued for.
        """
        if limit < 1:
            raise QueryError(f"limit must be >= 1, got {limit}")
        if order not in ("asc", "desc"):
            raise QueryError(f"order must be 'asc' or 'desc', got {order!r}")
        if since is not None and until is not None and since >= until:
            raise QueryError(f"empty time range: since={since} must be < until={until}")
        clauses, params = [], []
        if since is not None:
            clauses.append("time >= ?")
            params.append(since)
        if until is not None:
            clauses.append("time < ?")
            params.append(until)
        for field, value in filters.items():
            if field not in self.indexes:
                self.convert(field, "")  # raises with the list of indexed fields
            clauses.append(f'"f_{field}" = ?')
            params.append(value)
        if cursor is not None:
            clauses.append("seq > ?" if order == "asc" else "seq < ?")
            params.append(decode_cursor(cursor, order))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._db().execute(
            f'SELECT id, source, time, schema_id, headers, payload, seq FROM "{self.table}" {where} '
            f"ORDER BY seq {order.upper()} LIMIT ?", (*params, limit + 1)).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1][6], order) if more else None
        return [self._row(r) for r in rows], next_cursor


_CURSOR_TAGS = {"asc": "s", "desc": "d"}


def encode_cursor(seq: int, order: str = "asc") -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_TAGS[order]}:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, order: str = "asc") -> int:
    """The position inside an opaque cursor; QueryError for anything this store did not issue."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if text[:2] in ("s:", "d:") and text[:2] != _CURSOR_TAGS[order] + ":":
            raise QueryError(f"this cursor continues an order={'asc' if text[0] == 's' else 'desc'} query; "
                             f"it cannot be used with order={order}")
        if not text.startswith(_CURSOR_TAGS[order] + ":"):
            raise ValueError
        seq = int(text[2:])
        if seq < 0:
            raise ValueError
        return seq
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise QueryError(f"invalid cursor {cursor[:64]!r}: pass the 'next_cursor' of a previous page") from None
