"""Result types and constants shared by the compiled kernels and their twin (one definition)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

LEFT = 0
RIGHT = 1


class FiredWindows(NamedTuple):
    """Windows emitted by `WindowAggTable.fire`, sorted by ``(end, start, key_id)``."""

    key_ids: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    counts: np.ndarray
    sums: np.ndarray
    mins: np.ndarray
    maxs: np.ndarray


class FiredSessions(NamedTuple):
    """Sessions emitted by `SessionTable.fire`, sorted by ``(end, start, key_id)``.

    ``merged_*`` name sessions emitted earlier that have since been merged into an emitted one.
    """

    key_ids: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    counts: np.ndarray
    sums: np.ndarray
    mins: np.ndarray
    maxs: np.ndarray
    merged_key_ids: np.ndarray
    merged_starts: np.ndarray
    merged_ends: np.ndarray


class JoinPairs(NamedTuple):
    """Matches from `IntervalJoinBuffers.process` and the late mask of the processed batch."""

    left_rows: np.ndarray
    right_rows: np.ndarray
    late: np.ndarray


# ---- flat JSON scanning (`scan_flat_json`) ---------------------------------------------------------
FLAT_OK = 0  # per-record status: decoded and validated by the scanner, values are in the columns
FLAT_SLOW = 1  # not on the fast path (anything unusual or invalid): decode the record another way

FLAT_KINDS = ("int", "float", "bool", "string", "enum", "timestamp", "number", "key")
# In the int64 column of a "number" or "key" field: the row holds a float (number) or a str (key). No int
# the scanner accepts equals it (it has 19 digits; longer integer literals than 18 digits take the slow path).
FLAT_SECOND_TYPE = -(2**63)


class FlatField(NamedTuple):
    """One field the flat JSON scanner reads, with the constraints it checks.

    ``kind`` is one of `FLAT_KINDS`; its column (preallocated by the caller, one row per record) is
    int64 (``int``, ``timestamp``: an integer literal), float64 (``float``: any JSON number), bool
    (``bool``), object holding ``str`` (``string``) or int32 codes into ``symbols`` (``enum``). Two kinds
    take a pair of columns: ``number`` (an int or a float, as msgspec tells them apart: a literal with a
    fraction or an exponent is a float) fills ``(int64, float64)``: the int, or `FLAT_SECOND_TYPE` for
    a float, and every value as a float64; ``key`` (an int or a str) fills ``(int64, object)``: the
    int or `FLAT_SECOND_TYPE` for a str, and the str or ``None`` for an int.
    ``ge``/``gt``/``le``/``lt`` bound numbers (ints for ``int``), ``multiple_of`` (an int) only ``int``
    fields; ``min_length``/``max_length`` count characters of a ``string``; ``dfa`` is ``(table,
    accepting, start)`` in the format of `dfa_reject_lines` and must accept a ``string`` value.
    """

    name: str
    kind: str
    ge: int | float | None = None
    gt: int | float | None = None
    le: int | float | None = None
    lt: int | float | None = None
    multiple_of: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    symbols: tuple[str, ...] | None = None
    dfa: tuple | None = None
