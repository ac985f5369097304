"""Storage for the schema registry: a small interface, an in-memory store and a SQLite store.

The registry (`engine.contracts.registry`) holds every rule; a store only keeps rows:

- schemas: ``id``, ``schema_type``, ``canonical`` (the identity: one id per type + canonical form), the
  schema text as first registered, and its references;
- subject versions: ``(subject, version) -> schema id`` with a soft-deleted flag;
- compatibility config: per subject, and global under the key ``None``.

`SQLiteStore` is the embedded default (one file, durable, safe to share between threads of one
process); `SQLiteStore(":memory:")` or `MemoryStore` keep everything in memory.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from typing import Protocol

import msgspec

from engine.contracts.errors import SchemaRegistryStorageError


class StoredSchema(msgspec.Struct, frozen=True):
    id: int
    schema_type: str
    canonical: str
    schema: str
    references: tuple = ()


class StoredVersion(msgspec.Struct, frozen=True):
    subject: str
    version: int
    schema_id: int
    deleted: bool = False


class RegistryStore(Protocol):
    """What the registry needs from storage. Implementations must be safe to call from one thread at a
    time per instance (the registry serialises calls with its own lock)."""

    def schema_id_for(self, schema_type: str, canonical: str) -> int | None: ...
    def add_schema(self, schema_type: str, canonical: str, schema: str, references: list) -> int: ...
    def schema_by_id(self, schema_id: int) -> StoredSchema | None: ...
    def versions(self, subject: str) -> list[StoredVersion]: ...
    def versions_of_schema(self, schema_id: int) -> list[StoredVersion]: ...
    def subjects(self) -> list[str]: ...
    def add_version(self, subject: str, version: int, schema_id: int) -> None: ...
    def set_deleted(self, subject: str, version: int, deleted: bool) -> None: ...
    def remove_version(self, subject: str, version: int) -> None: ...
    def get_config(self, subject: str | None) -> str | None: ...
    def set_config(self, subject: str | None, level: str | None) -> None: ...
    def close(self) -> None: ...


class MemoryStore:
    """Everything in dicts; lost when the process exits."""

    def __init__(self):
        self._schemas: dict[int, StoredSchema] = {}
        self._ids: dict[tuple[str, str], int] = {}
        self._versions: dict[tuple[str, int], StoredVersion] = {}
        self._config: dict[str | None, str] = {}

    def schema_id_for(self, schema_type, canonical):
        return self._ids.get((schema_type, canonical))

    def add_schema(self, schema_type, canonical, schema, references):
        new_id = max(self._schemas, default=0) + 1
        self._schemas[new_id] = StoredSchema(new_id, schema_type, canonical, schema, tuple(references))
        self._ids[(schema_type, canonical)] = new_id
        return new_id

    def schema_by_id(self, schema_id):
        return self._schemas.get(schema_id)

    def versions(self, subject):
        return sorted((v for (s, _), v in self._versions.items() if s == subject), key=lambda v: v.version)

    def versions_of_schema(self, schema_id):
        return sorted((v for v in self._versions.values() if v.schema_id == schema_id),
                      key=lambda v: (v.subject, v.version))

    def subjects(self):
        return sorted({s for s, _ in self._versions})

    def add_version(self, subject, version, schema_id):
        self._versions[(subject, version)] = StoredVersion(subject, version, schema_id, False)

    def set_deleted(self, subject, version, deleted):
        v = self._versions[(subject, version)]
        self._versions[(subject, version)] = msgspec.structs.replace(v, deleted=deleted)

    def remove_version(self, subject, version):
        self._versions.pop((subject, version), None)

    def get_config(self, subject):
        return self._config.get(subject)

    def set_config(self, subject, level):
        if level is None:
            self._config.pop(subject, None)
        else:
            self._config[subject] = level

    def close(self):
        pass


_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS schemas (
    id INTEGER PRIMARY KEY,
    schema_type TEXT NOT NULL,
    canonical TEXT NOT NULL,
    schema TEXT NOT NULL,
    refs TEXT NOT NULL DEFAULT '[]',
    UNIQUE (schema_type, canonical)
);
CREATE TABLE IF NOT EXISTS subject_versions (
    subject TEXT NOT NULL,
    version INTEGER NOT NULL,
    schema_id INTEGER NOT NULL REFERENCES schemas(id),
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (subject, version)
);
CREATE INDEX IF NOT EXISTS subject_versions_by_schema ON subject_versions(schema_id);
CREATE TABLE IF NOT EXISTS config (
    subject TEXT PRIMARY KEY,   -- '' is the global config
    compatibility TEXT NOT NULL
);
"""


class SQLiteStore:
    """Rows in a SQLite database file (``":memory:"`` for a throw-away one). Each write commits."""

    def __init__(self, path: str = "registry.db"):
        self.path = str(path)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL" if self.path != ":memory:" else "PRAGMA journal_mode=MEMORY")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA_SQL)
        except sqlite3.Error as exc:
            raise SchemaRegistryStorageError(f"cannot open registry database {self.path!r}: {exc}") from None
        self._lock = threading.Lock()

    def _q(self, sql: str, args: tuple = ()) -> list[tuple]:
        try:
            with self._lock:
                return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise SchemaRegistryStorageError(f"registry database error ({self.path}): {exc}") from None

    def schema_id_for(self, schema_type, canonical):
        rows = self._q("SELECT id FROM schemas WHERE schema_type=? AND canonical=?", (schema_type, canonical))
        return rows[0][0] if rows else None

    def add_schema(self, schema_type, canonical, schema, references):
        self._q("INSERT INTO schemas (schema_type, canonical, schema, refs) VALUES (?, ?, ?, ?)",
                (schema_type, canonical, schema, json.dumps(list(references))))
        return self.schema_id_for(schema_type, canonical)

    def schema_by_id(self, schema_id):
        rows = self._q("SELECT id, schema_type, canonical, schema, refs FROM schemas WHERE id=?", (schema_id,))
        if not rows:
            return None
        i, t, c, s, r = rows[0]
        return StoredSchema(i, t, c, s, tuple(json.loads(r)))

    def versions(self, subject):
        rows = self._q("SELECT subject, version, schema_id, deleted FROM subject_versions WHERE subject=? "
                       "ORDER BY version", (subject,))
        return [StoredVersion(s, v, i, bool(d)) for s, v, i, d in rows]

    def versions_of_schema(self, schema_id):
        rows = self._q("SELECT subject, version, schema_id, deleted FROM subject_versions WHERE schema_id=? "
                       "ORDER BY subject, version", (schema_id,))
        return [StoredVersion(s, v, i, bool(d)) for s, v, i, d in rows]

    def subjects(self):
        return [r[0] for r in self._q("SELECT DISTINCT subject FROM subject_versions ORDER BY subject")]

    def add_version(self, subject, version, schema_id):
        self._q("INSERT INTO subject_versions (subject, version, schema_id) VALUES (?, ?, ?)",
                (subject, version, schema_id))

    def set_deleted(self, subject, version, deleted):
        self._q("UPDATE subject_versions SET deleted=? WHERE subject=? AND version=?", (int(deleted), subject, version))

    def remove_version(self, subject, version):
        self._q("DELETE FROM subject_versions WHERE subject=? AND version=?", (subject, version))

    def get_config(self, subject):
        rows = self._q("SELECT compatibility FROM config WHERE subject=?", ("" if subject is None else subject,))
        return rows[0][0] if rows else None

    def set_config(self, subject, level):
        key = "" if subject is None else subject
        if level is None:
            self._q("DELETE FROM config WHERE subject=?", (key,))
        else:
            self._q("INSERT INTO config (subject, compatibility) VALUES (?, ?) "
                    "ON CONFLICT(subject) DO UPDATE SET compatibility=excluded.compatibility", (key, level))

    def close(self):
        with self._lock:
            self._db.close()
