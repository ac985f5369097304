"""Shared SQLite set-up for the embedded stores (serving records, quality quarantine and trend)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from engine.errors import ServiceError

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def check_identifier(kind: str, name: str) -> str:
    """``name`` as a safe SQL identifier (letters, digits, '_'), or a ServiceError naming ``kind``."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise ServiceError(f"invalid {kind} {name!r}: use letters, digits and '_' (not starting with a digit)")
    return name


def connect(path: str | Path, synchronous: str = "FULL") -> sqlite3.Connection:
    """Open a database in WAL mode. ``synchronous=FULL`` (default) makes a committed write survive a
    power loss, which the bus relies on: its offset is committed only after the write."""
    if synchronous not in ("OFF", "NORMAL", "FULL"):
        raise ServiceError(f"synchronous must be OFF, NORMAL or FULL, got {synchronous!r}")
    target = str(path)
    if target != ":memory:":
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise ServiceError(f"cannot open SQLite database {target!r}: {exc}") from exc
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn
