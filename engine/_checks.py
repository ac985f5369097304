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


# --- window assignment, watermarks and key interning (kernels 1-3) ---------------------------------
# The kernels detect these conditions inside their loops and report them afterwards through these
# helpers, so the compiled kernels and the twin raise the very same message.


def tumbling_window_error(index: int, ts: int, size: int, offset: int) -> ValueError:
    """The tumbling window of ``ts`` (record ``index``) does not fit in int64."""
    start = offset + (ts - offset) // size * size
    return ValueError(
        f"ts[{index}]={ts} cannot be assigned a tumbling window: its window [{start}, {start + size}) "
        f"(size={size}, offset={offset}) does not fit in int64; timestamps this close to the int64 "
        f"limits cannot be windowed"
    )


def sliding_window_error(index: int, ts: int, size: int, slide: int, offset: int) -> ValueError:
    """Some sliding window of ``ts`` (record ``index``) does not fit in int64."""
    last = offset + (ts - offset) // slide * slide
    count = -(-(size - (ts - last)) // slide)  # windows holding ts (>= 1 when this error is raised)
    first = last - (count - 1) * slide
    return ValueError(
        f"ts[{index}]={ts} cannot be assigned sliding windows: its windows span [{first}, {last + size}) "
        f"(size={size}, slide={slide}, offset={offset}), which does not fit in int64; timestamps this "
        f"close to the int64 limits cannot be windowed"
    )


def unhashable_key(index: int, key: object, cause: BaseException) -> TypeError:
    """Key ``index`` of a batch cannot be used as a dict key."""
    return TypeError(
        f"key {key!r} at index {index} cannot be interned: {type(cause).__name__}: {cause}; "
        f"keys must be hashable (use a tuple instead of a list, for example)"
    )


def key_id_error(key_id: int, n_keys: int) -> ValueError:
    return ValueError(f"key id {key_id} is not interned; valid ids are 0 <= key_id < {n_keys}")


def key_sequence(keys: object) -> None:
    """Refuse arguments that are not a sequence of keys (a bare ``str`` would intern its characters)."""
    if isinstance(keys, (str, bytes, bytearray)) or not hasattr(keys, "__len__") or not hasattr(keys, "__iter__"):
        raise TypeError(
            f"keys must be a sequence of keys (list, tuple or 1-D numpy array), got {type(keys).__name__}"
        )
    if isinstance(keys, np.ndarray) and keys.ndim != 1:
        raise ValueError(f"keys must be a 1-D array, got shape {keys.shape}")


def key_batch(keys: object) -> tuple[str, object]:
    """A batch of keys as ``("int64", array)`` or ``("objects", list)``, as both implementations do.

    Integer arrays that fit in int64 take the int64 path; every other sequence (lists, object, str,
    bool and float arrays, uint64 values above INT64_MAX) becomes a list of Python objects.
    """
    key_sequence(keys)
    if isinstance(keys, np.ndarray):
        if keys.dtype.kind == "i" or (keys.dtype.kind == "u" and (keys.size == 0 or int(keys.max()) <= INT64_MAX)):
            return "int64", int64_column("keys", keys)
        return "objects", keys.tolist()
    return "objects", list(keys)


def snapshot_field(snapshot: object, cls_name: str, name: str) -> object:
    """``snapshot[name]``, or a clear error when the snapshot is not a mapping holding it."""
    if not isinstance(snapshot, dict):
        raise TypeError(f"{cls_name}.restore expects a dict snapshot, got {type(snapshot).__name__}")
    if name not in snapshot:
        raise ValueError(f"{cls_name} snapshot is missing {name!r} (has {sorted(snapshot)})")
    return snapshot[name]
