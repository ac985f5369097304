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


def span_end_fits(name: str, ts: np.ndarray, span: int, what: str) -> None:
    """Raise ``ValueError`` naming the first timestamp whose ``ts + span`` exceeds INT64_MAX.

    ``span > 0``. Used where an end (e.g. a session's ``ts + gap``) must be representable exactly,
    because saturating it would silently change the window.
    """
    if ts.size == 0 or int(ts.max()) <= INT64_MAX - span:
        return
    bad = int(ts[np.argmax(ts > INT64_MAX - span)])
    raise ValueError(f"{name}={bad}: {what} {name} + {span} exceeds the int64 range (max {INT64_MAX})")


def snapshot_entry(snapshot: object, key: str) -> object:
    """``snapshot[key]``, or a ``ValueError`` saying the snapshot is not one this kernel wrote."""
    if not isinstance(snapshot, dict):
        raise TypeError(f"snapshot must be a dict, got {type(snapshot).__name__}")
    if key not in snapshot:
        raise ValueError(f"snapshot is missing {key!r}; was it taken from this kernel?")
    return snapshot[key]


def session_snapshot(snapshot: object) -> dict:
    """Validate a `SessionTable` snapshot; return its fields as checked Python ints and numpy arrays.

    Shared by both implementations so a damaged snapshot is refused with the same message before any
    state is built: sessions must be sorted by ``(key_id, start, end)`` without duplicates, every
    ``end > start``, and every pending merged entry must name an owner session by index.
    """
    out: dict = {
        "gap": positive("gap", snapshot_entry(snapshot, "gap")),
        "lateness": non_negative("lateness", snapshot_entry(snapshot, "lateness")),
        "n_values": non_negative("n_values", snapshot_entry(snapshot, "n_values")),
        "watermark": integer("watermark", snapshot_entry(snapshot, "watermark")),
    }
    for name in ("key_ids", "starts", "ends", "counts", "merged_key_ids", "merged_starts", "merged_ends", "merged_owners"):
        out[name] = int64_column(name, snapshot_entry(snapshot, name))
    for name in ("dirty", "emitted"):
        out[name] = bool_column(name, snapshot_entry(snapshot, name))
    m = same_length(key_ids=out["key_ids"], starts=out["starts"], ends=out["ends"], counts=out["counts"],
                    dirty=out["dirty"], emitted=out["emitted"])
    same_length(merged_key_ids=out["merged_key_ids"], merged_starts=out["merged_starts"],
                merged_ends=out["merged_ends"], merged_owners=out["merged_owners"])
    for name in ("sums", "mins", "maxs"):
        out[name] = float64_matrix(name, snapshot_entry(snapshot, name), m, out["n_values"])
    keys, starts, ends = out["key_ids"], out["starts"], out["ends"]
    if np.any(ends <= starts):
        raise ValueError("snapshot holds a session with end <= start")
    if m > 1:
        order = np.lexsort((ends, starts, keys))
        same = (keys[1:] == keys[:-1]) & (starts[1:] == starts[:-1]) & (ends[1:] == ends[:-1])
        if not np.array_equal(order, np.arange(m)) or np.any(same):
            raise ValueError("snapshot sessions must be sorted by (key_id, start, end) without duplicates")
    owners = out["merged_owners"]
    if owners.size and (int(owners.min()) < 0 or int(owners.max()) >= m):
        raise ValueError(f"snapshot merged_owners must index the {m} sessions")
    return out
