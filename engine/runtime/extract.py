"""Reading fields out of a batch: one column per batch, bad records found and explained.

Field-name extractors take the fast path (one list comprehension or one numpy column per batch);
callables run once per record. Only when the fast path fails does a per-record loop run, to tell the
good records from the bad ones; each bad record becomes a `Problem` naming the field and the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

__all__ = ["Problem", "call_per_record", "field_values", "numeric_column", "timestamp_column"]


@dataclass
class Problem:
    """Record ``index`` of the batch could not be processed."""

    index: int
    error: str
    field: str | None
    value: Any


_MISSING = object()


def _get(record: Any, name: str) -> Any:
    """``record[name]`` for mappings, ``getattr(record, name)`` otherwise; `_MISSING` when absent."""
    if isinstance(record, dict) or hasattr(type(record), "__getitem__") and hasattr(type(record), "keys"):
        try:
            return record[name]
        except KeyError:
            return _MISSING
    return getattr(record, name, _MISSING)


def field_values(records: Sequence[Any], name: str) -> tuple[list[Any], list[Problem]]:
    """The values of field ``name`` of every record, and a `Problem` for each record lacking it.

    Records are dicts (or mappings), msgspec Structs or objects with attributes. The returned values
    are only those of the good records, in order.
    """
    if not records:
        return [], []
    first = records[0]
    try:
        if type(first) is dict:
            return [r[name] for r in records], []
        if not hasattr(type(first), "keys"):
            return [getattr(r, name) for r in records], []
    except (KeyError, AttributeError, TypeError):
        pass
    values: list[Any] = []
    problems: list[Problem] = []
    for i, record in enumerate(records):
        value = _get(record, name)
        if value is _MISSING:
            problems.append(Problem(i, f"record has no field {name!r}", name, None))
        else:
            values.append(value)
    return values, problems


def call_per_record(
    fn: Callable[[Any], Any], records: Sequence[Any], what: str, *, pure: bool = False
) -> tuple[list[Any], list[Problem]]:
    """``fn(record)`` for every record; a record whose call raises becomes a `Problem`. Returns the
    results of the good records, in order.

    A ``pure`` function (the timestamp, key and value extractors, documented as side-effect free) runs
    as one ``map`` over the batch, and only when a call raises is the batch redone record by record. Any
    other function (map, filter, flat_map bodies) is called exactly once per record.
    """
    if pure:
        try:
            return list(map(fn, records)), []
        except Exception:  # noqa: BLE001 - redo one by one to find which records fail
            pass
    out: list[Any] = []
    problems: list[Problem] = []
    append = out.append
    i = 0
    n = len(records)
    while i < n:
        j = i
        try:
            for j in range(i, n):
                append(fn(records[j]))
            break
        except Exception as exc:  # a user function may raise anything; the record is routed, not lost
            problems.append(Problem(j, f"{what} raised {type(exc).__name__}: {exc}", None, None))
            i = j + 1
    return out, problems


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def timestamp_column(values: Sequence[Any] | np.ndarray, name: str) -> tuple[np.ndarray, list[Problem]]:
    """Timestamps as int64; anything that is not an integer in int64 range is a `Problem`.

    Floats and bools are refused rather than converted: a timestamp of ``1.5`` or ``True`` is a bug
    upstream, not 1 ms. Problems index into ``values``; the returned array holds only the good values.
    """
    if isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype.kind in "iu":
        if values.dtype.kind == "i" or not len(values) or int(values.max()) <= INT64_MAX:
            return values.astype(np.int64, copy=False), []
    elif not isinstance(values, np.ndarray):
        if not len(values):
            return np.empty(0, dtype=np.int64), []
        if set(map(type, values)) == {int}:  # the common case; bool is a subclass, so compare types
            try:
                return np.array(values, dtype=np.int64), []
            except OverflowError:
                pass
    good: list[int] = []
    problems: list[Problem] = []
    for i, value in enumerate(values.tolist() if isinstance(values, np.ndarray) else values):
        if _is_int(value) and INT64_MIN <= int(value) <= INT64_MAX:
            good.append(int(value))
        else:
            problems.append(
                Problem(i, f"timestamp must be an int of milliseconds (int64), got {value!r}", name, value)
            )
    return np.array(good, dtype=np.int64), problems


def numeric_column(values: Sequence[Any] | np.ndarray, name: str) -> tuple[np.ndarray, bool, list[Problem]]:
    """Values as float64, whether they were all integers, and a `Problem` for each non-number.

    ``None``, strings and bools are not numbers (a string ``"1.5"`` is not silently parsed).
    """
    if isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype.kind in "iuf":
        return values.astype(np.float64, copy=False), values.dtype.kind in "iu", []
    if len(values) == 0:
        return np.empty(0, dtype=np.float64), True, []
    if not isinstance(values, np.ndarray):
        types = set(map(type, values))  # bool is a subclass of int, so compare exact types
        if types <= {int, float}:
            try:
                return np.array(values, dtype=np.float64), float not in types, []
            except OverflowError:
                pass
    good: list[float] = []
    problems: list[Problem] = []
    all_int = True
    for i, value in enumerate(values.tolist() if isinstance(values, np.ndarray) else values):
        if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
            all_int = all_int and _is_int(value)
            good.append(float(value))
        else:
            problems.append(Problem(i, f"{name} must be a number, got {value!r}", name, value))
    return np.array(good, dtype=np.float64), all_int, problems


def good_index(n: int, problems: list[Problem]) -> np.ndarray:
    """Positions ``0..n-1`` not named by ``problems``."""
    keep = np.ones(n, dtype=bool)
    keep[[p.index for p in problems]] = False
    return np.flatnonzero(keep)
