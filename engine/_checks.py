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


def saturating_add(a: int, b: int) -> int:
    """``a + b`` clamped to the int64 range (the rule for all time arithmetic)."""
    return max(INT64_MIN, min(INT64_MAX, a + b))


# --- windowed aggregation (WindowAggTable) ---------------------------------------------------------

MAX_VALUE_COLUMNS = 1 << 16


def value_columns(name: str, value: object) -> int:
    """Number of numeric value columns of an aggregation table: ``0 <= value <= MAX_VALUE_COLUMNS``."""
    value = non_negative(name, value)
    if value > MAX_VALUE_COLUMNS:
        raise ValueError(f"{name} must be <= {MAX_VALUE_COLUMNS}, got {value}")
    return value


def window_ends_fit(name: str, starts: np.ndarray, size: int) -> None:
    """Raise ``ValueError`` naming the first start whose window end ``start + size`` overflows int64."""
    if starts.size and int(starts.max()) > INT64_MAX - size:
        bad = int(starts[np.argmax(starts > INT64_MAX - size)])
        raise ValueError(f"{name} holds {bad}, whose window end {bad} + {size} does not fit in int64")


_WINDOW_AGG_SNAPSHOT_KEYS = (
    "size", "lateness", "n_values", "key_ids", "starts", "counts", "sums", "mins", "maxs", "emitted", "dirty",
)


def window_agg_snapshot(snapshot: object) -> tuple:
    """Validate a `WindowAggTable` snapshot; return its fields in ``_WINDOW_AGG_SNAPSHOT_KEYS`` order.

    The snapshot must be canonical: windows strictly ordered by ``(start, key_id)`` (so no duplicates),
    every count >= 1, every window emitted or dirty (or both), every window end representable.
    """
    if not isinstance(snapshot, dict):
        raise TypeError(f"snapshot must be a dict, got {type(snapshot).__name__}")
    missing = [k for k in _WINDOW_AGG_SNAPSHOT_KEYS if k not in snapshot]
    if missing:
        raise ValueError(f"snapshot is missing {', '.join(missing)}")
    size = positive("snapshot['size']", snapshot["size"])
    lateness = non_negative("snapshot['lateness']", snapshot["lateness"])
    n_values = value_columns("snapshot['n_values']", snapshot["n_values"])
    key_ids = int64_column("snapshot['key_ids']", snapshot["key_ids"])
    starts = int64_column("snapshot['starts']", snapshot["starts"])
    counts = int64_column("snapshot['counts']", snapshot["counts"])
    emitted = bool_column("snapshot['emitted']", snapshot["emitted"])
    dirty = bool_column("snapshot['dirty']", snapshot["dirty"])
    m = same_length(key_ids=key_ids, starts=starts, counts=counts, emitted=emitted, dirty=dirty)
    sums = float64_matrix("snapshot['sums']", snapshot["sums"], m, n_values)
    mins = float64_matrix("snapshot['mins']", snapshot["mins"], m, n_values)
    maxs = float64_matrix("snapshot['maxs']", snapshot["maxs"], m, n_values)
    if m and int(counts.min()) < 1:
        raise ValueError(f"snapshot['counts'] must be >= 1, got {int(counts.min())}")
    if m and int(counts.max()) >= 2**62:
        raise ValueError(f"snapshot['counts'] must be < 2**62, got {int(counts.max())}")
    if m and not bool(np.all(emitted | dirty)):
        raise ValueError("snapshot has a window that is neither emitted nor dirty")
    window_ends_fit("snapshot['starts']", starts, size)
    if m > 1:
        ordered = (starts[1:] > starts[:-1]) | ((starts[1:] == starts[:-1]) & (key_ids[1:] > key_ids[:-1]))
        if not bool(np.all(ordered)):
            i = int(np.argmin(ordered))
            raise ValueError(
                "snapshot windows must be strictly ordered by (start, key_id), got "
                f"({int(starts[i])}, {int(key_ids[i])}) before ({int(starts[i + 1])}, {int(key_ids[i + 1])})"
            )
    return size, lateness, n_values, key_ids, starts, counts, sums, mins, maxs, emitted, dirty
