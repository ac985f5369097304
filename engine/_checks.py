"""Argument checks shared by the compiled kernels and their pure-Python twin.

Both implementations call these before touching data, so a bad argument raises the same clear
``TypeError``/``ValueError`` from either one, and never reaches a typed loop where it could read out of
bounds. The checks are per call (per batch), never per record.
"""

from __future__ import annotations

import numpy as np

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def int64_column(name: str, values: object) -> np.ndarray:
    """Return ``values`` as a 1-D C-contiguous int64 array, or raise naming ``name``.

    Integer arrays of other widths are converted when every value fits; floats, bools and objects are
    refused, because silently truncating a timestamp or key id would corrupt results.
    """
    arr = np.asarray(values) if not isinstance(values, np.ndarray) else values
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if arr.dtype == np.int64:
        return np.ascontiguousarray(arr)
    if arr.size == 0 and arr.dtype.kind in "fO":
        return np.empty(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an int64 array, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > INT64_MAX:
        raise ValueError(f"{name} holds {int(arr.max())}, which does not fit in int64")
    return np.ascontiguousarray(arr, dtype=np.int64)


def float64_matrix(name: str, values: object, n_rows: int, n_cols: int) -> np.ndarray:
    """Return ``values`` as a C-contiguous float64 array of shape ``(n_rows, n_cols)``, or raise."""
    arr = np.asarray(values) if not isinstance(values, np.ndarray) else values
    if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
        raise TypeError(f"{name} must be a float64 array, got dtype {arr.dtype}")
    if arr.ndim == 1 and n_cols == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2 or arr.shape != (n_rows, n_cols):
        raise ValueError(f"{name} must have shape ({n_rows}, {n_cols}), got {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float64)


def bool_column(name: str, values: object) -> np.ndarray:
    arr = np.asarray(values) if not isinstance(values, np.ndarray) else values
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if arr.dtype != np.bool_:
        raise TypeError(f"{name} must be a bool array, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr)


def same_length(**columns: np.ndarray) -> int:
    """Return the common length of the named columns, or raise naming the ones that differ."""
    lengths = {name: len(col) for name, col in columns.items()}
    distinct = set(lengths.values())
    if len(distinct) > 1:
        described = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise ValueError(f"arrays must have equal lengths, got {described}")
    return distinct.pop() if distinct else 0


def integer(name: str, value: object) -> int:
    """Return ``value`` as a Python int in int64 range; durations may be ``datetime.timedelta``."""
    import datetime

    if isinstance(value, datetime.timedelta):
        value = value // datetime.timedelta(milliseconds=1)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int (milliseconds), got {value!r}")
    value = int(value)
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"{name}={value} does not fit in int64")
    return value


def positive(name: str, value: object) -> int:
    value = integer(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def non_negative(name: str, value: object) -> int:
    value = integer(name, value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def offset_within(name: str, value: object, bound_name: str, bound: int) -> int:
    """Window offsets follow Flink: ``-bound < offset < bound``."""
    value = integer(name, value)
    if not -bound < value < bound:
        raise ValueError(f"{name} must satisfy -{bound_name} < {name} < {bound_name}, got {value} with {bound_name}={bound}")
    return value


def side(value: object) -> int:
    if value not in (0, 1) or isinstance(value, bool):
        raise ValueError(f"side must be LEFT (0) or RIGHT (1), got {value!r}")
    return int(value)


# --- interval join (kernel 6) ----------------------------------------------------------------------


def flag(name: str, value: object) -> bool:
    """Return ``value`` as a bool; only ``True``/``False`` (or numpy bools) are accepted."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def interval_bounds(lower: object, upper: object) -> tuple[int, int]:
    """The interval-join bounds as ints (ms or ``timedelta``), refusing ``lower > upper``."""
    lower = integer("lower", lower)
    upper = integer("upper", upper)
    if lower > upper:
        raise ValueError(f"interval join bounds must satisfy lower <= upper, got lower={lower}, upper={upper}")
    return lower, upper


INTERVAL_JOIN_SNAPSHOT_ARRAYS = (
    "left_key_ids",
    "left_ts",
    "left_row_ids",
    "right_key_ids",
    "right_ts",
    "right_row_ids",
)


def interval_join_snapshot(snapshot: object) -> tuple[int, int, bool, bool, dict[str, np.ndarray]]:
    """Validate an `IntervalJoinBuffers` snapshot: ``(lower, upper, lower_exclusive, upper_exclusive, arrays)``.

    ``arrays`` holds the six int64 columns of `INTERVAL_JOIN_SNAPSHOT_ARRAYS`, re-sorted by
    ``(key_id, ts, row_id)`` per side so a hand-edited snapshot cannot break the buffers' order.
    """
    if not isinstance(snapshot, dict):
        raise TypeError(f"IntervalJoinBuffers.restore expects a dict snapshot, got {type(snapshot).__name__}")
    missing = [
        name
        for name in ("lower", "upper", "lower_exclusive", "upper_exclusive", *INTERVAL_JOIN_SNAPSHOT_ARRAYS)
        if name not in snapshot
    ]
    if missing:
        raise ValueError(f"IntervalJoinBuffers snapshot is missing {missing} (has {sorted(snapshot)})")
    lower, upper = interval_bounds(snapshot["lower"], snapshot["upper"])
    lower_exclusive = flag("lower_exclusive", snapshot["lower_exclusive"])
    upper_exclusive = flag("upper_exclusive", snapshot["upper_exclusive"])
    arrays = {name: int64_column(f"snapshot[{name!r}]", snapshot[name]) for name in INTERVAL_JOIN_SNAPSHOT_ARRAYS}
    for side_name in ("left", "right"):
        keys, ts, rows = (arrays[f"{side_name}_{col}"] for col in ("key_ids", "ts", "row_ids"))
        same_length(**{f"{side_name}_key_ids": keys, f"{side_name}_ts": ts, f"{side_name}_row_ids": rows})
        order = np.lexsort((rows, ts, keys))
        for col, arr in (("key_ids", keys), ("ts", ts), ("row_ids", rows)):
            arrays[f"{side_name}_{col}"] = np.ascontiguousarray(arr[order])
    return lower, upper, lower_exclusive, upper_exclusive, arrays


def saturating_add(a: int, b: int) -> int:
    """``a + b`` clamped to the int64 range (the rule for all time arithmetic)."""
    return max(INT64_MIN, min(INT64_MAX, a + b))
