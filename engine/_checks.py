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


def dfa_arguments(buf: object, table: object, accepting: object, start: object):
    """Check the arguments of `dfa_reject_lines` and return them as arrays.

    ``buf``: bytes or a 1-D uint8 array (lines separated by ``\\n``); ``table``: int64, 256 entries per
    state, each a valid state id (so any byte keeps the automaton in bounds); ``accepting``: one bool per
    state; ``start``: a state id.
    """
    if isinstance(buf, (bytes, bytearray, memoryview)):
        buf = np.frombuffer(buf, dtype=np.uint8)
    arr = np.asarray(buf) if not isinstance(buf, np.ndarray) else buf
    if arr.ndim != 1 or arr.dtype != np.uint8:
        raise TypeError(f"buf must be bytes or a 1-D uint8 array, got {getattr(arr, 'dtype', type(buf))}")
    table_arr = int64_column("table", table)
    if len(table_arr) == 0 or len(table_arr) % 256:
        raise ValueError(f"table must hold 256 entries per state, got {len(table_arr)} entries")
    n_states = len(table_arr) // 256
    if int(table_arr.min()) < 0 or int(table_arr.max()) >= n_states:
        raise ValueError(f"table entries must be state ids in [0, {n_states})")
    acc = bool_column("accepting", accepting)
    if len(acc) != n_states:
        raise ValueError(f"accepting must hold one flag per state ({n_states}), got {len(acc)}")
    start = integer("start", start)
    if not 0 <= start < n_states:
        raise ValueError(f"start={start} is not a state id in [0, {n_states})")
    return np.ascontiguousarray(arr), table_arr, acc, start
