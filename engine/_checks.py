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

    Windows may come in any order (the caller rejects a window given twice); every count must be >= 1,
    every window emitted or dirty (or both), every window end representable.
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
    return size, lateness, n_values, key_ids, starts, counts, sums, mins, maxs, emitted, dirty


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


# ---- flat JSON scanning ------------------------------------------------------------------------------
_FLAT_DTYPES = {"int": np.int64, "timestamp": np.int64, "float": np.float64, "bool": np.bool_,
                "string": np.object_, "enum": np.int32}
_FLAT_PAIR_DTYPES = {"number": (np.int64, np.float64), "key": (np.int64, np.object_)}  # two columns each


def _flat_int_range(f) -> tuple[int, int]:
    """Inclusive int64 bounds of an ``int`` field (``lo > hi`` when no int64 value can pass)."""
    lo, hi = INT64_MIN, INT64_MAX
    for key in ("ge", "gt", "le", "lt"):
        bound = getattr(f, key)
        if bound is None:
            continue
        if isinstance(bound, bool) or not isinstance(bound, (int, np.integer)):
            raise TypeError(f"field {f.name!r}: {key} of an int field must be an int, got {bound!r}")
        bound = int(bound)
        if key == "ge":
            lo = max(lo, bound)
        elif key == "gt":
            lo = max(lo, bound + 1)
        elif key == "le":
            hi = min(hi, bound)
        else:
            hi = min(hi, bound - 1)
    if lo > hi:  # also when a bound lies outside int64: nothing passes, every record takes the slow path
        return 1, 0
    return lo, hi


def _flat_float_bounds(f) -> tuple[float, float, bool, bool, bool, bool]:
    """(low, high, low exclusive, high exclusive, has low, has high) of a ``float`` field."""
    out = [0.0, 0.0, False, False, False, False]
    for key, slot, exclusive in (("ge", 0, False), ("gt", 0, True), ("le", 1, False), ("lt", 1, True)):
        bound = getattr(f, key)
        if bound is None:
            continue
        if isinstance(bound, bool) or not isinstance(bound, (int, float, np.integer, np.floating)):
            raise TypeError(f"field {f.name!r}: {key} must be a number, got {bound!r}")
        if out[4 + slot]:
            raise ValueError(f"field {f.name!r}: give at most one lower and one upper bound")
        out[slot] = float(bound)
        out[2 + slot] = exclusive
        out[4 + slot] = True
    return tuple(out)  # type: ignore[return-value]


def gather_arguments(items: object, int_names: object, object_names: object,
                     append_to: object = None) -> tuple[list, tuple, tuple, tuple | None]:
    """Check the arguments of `gather_attributes`: a list, two tuples of attribute names and, if given,
    one list per object name to append to."""
    if not isinstance(items, list):
        raise TypeError(f"items must be a list, got {type(items).__name__}")
    for what, names in (("int_names", int_names), ("object_names", object_names)):
        if not isinstance(names, tuple):
            raise TypeError(f"{what} must be a tuple of attribute names, got {type(names).__name__}")
        for name in names:
            if type(name) is not str or not name:
                raise TypeError(f"{what} must hold non-empty strs, got {name!r}")
    if not int_names and not object_names:
        raise ValueError("gather_attributes needs at least one attribute name")
    if append_to is not None:
        if not isinstance(append_to, (tuple, list)) or len(append_to) != len(object_names) or not all(
                type(target) is list for target in append_to):
            raise TypeError(f"append_to must hold one list per object name ({len(object_names)}), got {append_to!r}")
        if len({id(target) for target in append_to}) != len(append_to):
            raise ValueError("append_to must hold distinct lists")
        append_to = tuple(append_to)
    return items, int_names, object_names, append_to  # type: ignore[return-value]


def _flat_column(name: str, col: object, dtype, n: int) -> None:
    if not isinstance(col, np.ndarray) or col.ndim != 1 or col.dtype != dtype or len(col) != n:
        got = f"{col.dtype} array of shape {col.shape}" if isinstance(col, np.ndarray) else type(col).__name__
        raise TypeError(f"column of field {name!r} must be a 1-D {np.dtype(dtype)} array of {n} rows, got {got}")
    if not col.flags.c_contiguous or not col.flags.writeable:
        raise ValueError(f"column of field {name!r} must be C-contiguous and writeable")


def flat_json_arguments(records: object, fields: object, columns: object, status: object):
    """Check the arguments of `scan_flat_json`; return ``(records, plan, columns, status)``.

    ``records``: a list (items that are not ``bytes`` take the slow path); ``fields``: a sequence of
    `FlatField`; ``columns``: one preallocated 1-D array per field, of the kind's dtype and of
    ``len(records)`` rows (a pair of them for ``number`` and ``key``); ``status``: a uint8 array of ``len(records)`` rows. ``plan`` holds one tuple
    per field: ``(name bytes, kind index, int lo, int hi, multiple_of (0: none), float lo, float hi,
    lo exclusive, hi exclusive, has lo, has hi, min length, max length (-1: none), dfa or None,
    symbols as bytes)``.
    """
    from engine._kernel_types import FLAT_KINDS, FlatField

    if not isinstance(records, list):
        raise TypeError(f"records must be a list of bytes, got {type(records).__name__}")
    n = len(records)
    if isinstance(fields, (str, bytes)) or not hasattr(fields, "__len__"):
        raise TypeError(f"fields must be a sequence of FlatField, got {type(fields).__name__}")
    fields = list(fields)  # type: ignore[call-overload]
    if not fields:
        raise ValueError("fields must name at least one field")
    if not isinstance(columns, (list, tuple)) or len(columns) != len(fields):
        raise ValueError(f"columns must be a list with one array per field ({len(fields)})")
    plan = []
    names = set()
    out_columns = []
    for f, col in zip(fields, columns):
        if not isinstance(f, FlatField):
            raise TypeError(f"fields must hold FlatField items, got {f!r}")
        if not isinstance(f.name, str) or not f.name:
            raise TypeError(f"field name must be a non-empty str, got {f.name!r}")
        if f.name in names:
            raise ValueError(f"field {f.name!r} is given twice")
        names.add(f.name)
        if f.kind not in FLAT_KINDS:
            raise ValueError(f"field {f.name!r}: kind must be one of {', '.join(FLAT_KINDS)}, got {f.kind!r}")
        if f.kind in _FLAT_PAIR_DTYPES:
            if not isinstance(col, (tuple, list)) or len(col) != 2:
                raise TypeError(f"column of {f.kind} field {f.name!r} must be a pair of arrays "
                                f"({', '.join(np.dtype(d).name for d in _FLAT_PAIR_DTYPES[f.kind])}), got {col!r}")
            col = tuple(col)
            for part, dtype in zip(col, _FLAT_PAIR_DTYPES[f.kind]):
                _flat_column(f.name, part, dtype, n)
        else:
            _flat_column(f.name, col, _FLAT_DTYPES[f.kind], n)
        bounded = any(getattr(f, k) is not None for k in ("ge", "gt", "le", "lt"))
        if bounded and f.kind not in ("int", "float"):
            raise ValueError(f"field {f.name!r}: bounds apply to int and float fields, not {f.kind}")
        lo, hi = _flat_int_range(f) if f.kind == "int" else (INT64_MIN, INT64_MAX)
        flo, fhi, flo_x, fhi_x, has_flo, has_fhi = (_flat_float_bounds(f) if f.kind == "float"
                                                     else (0.0, 0.0, False, False, False, False))
        mult = 0
        if f.multiple_of is not None:
            if f.kind != "int":
                raise ValueError(f"field {f.name!r}: multiple_of applies to int fields only")
            if isinstance(f.multiple_of, bool) or not isinstance(f.multiple_of, (int, np.integer)):
                raise TypeError(f"field {f.name!r}: multiple_of must be an int, got {f.multiple_of!r}")
            mult = int(f.multiple_of)
            if not 0 < mult <= INT64_MAX:
                raise ValueError(f"field {f.name!r}: multiple_of must be in [1, 2**63), got {mult}")
        lengths = []
        for key in ("min_length", "max_length"):
            value = getattr(f, key)
            if value is not None and f.kind != "string":
                raise ValueError(f"field {f.name!r}: {key} applies to string fields only")
            lengths.append(-1 if value is None else non_negative(f"field {f.name!r}: {key}", value))
        dfa = None
        if f.dfa is not None:
            if f.kind != "string":
                raise ValueError(f"field {f.name!r}: a pattern (dfa) applies to string fields only")
            if not isinstance(f.dfa, tuple) or len(f.dfa) != 3:
                raise TypeError(f"field {f.name!r}: dfa must be a (table, accepting, start) tuple")
            _, table, acc, start = dfa_arguments(b"", *f.dfa)
            dfa = (table, acc.view(np.uint8), start)
        symbols: tuple[bytes, ...] = ()
        if f.kind == "enum":
            if not f.symbols or not all(isinstance(s, str) for s in f.symbols):
                raise ValueError(f"field {f.name!r}: an enum needs a non-empty tuple of str symbols")
            if len(f.symbols) > 2**31 - 1:
                raise ValueError(f"field {f.name!r}: too many symbols for int32 codes")
            symbols = tuple(s.encode("utf-8", "surrogatepass") for s in f.symbols)
        elif f.symbols is not None:
            raise ValueError(f"field {f.name!r}: symbols apply to enum fields only")
        plan.append((f.name.encode("utf-8", "surrogatepass"), FLAT_KINDS.index(f.kind), lo, hi, mult,
                     flo, fhi, flo_x, fhi_x, has_flo, has_fhi, lengths[0], lengths[1], dfa, symbols))
        out_columns.append(col)
    if not isinstance(status, np.ndarray) or status.dtype != np.uint8 or status.ndim != 1 or len(status) != n:
        raise TypeError(f"status must be a 1-D uint8 array of {n} rows")
    if not status.flags.c_contiguous or not status.flags.writeable:
        raise ValueError("status must be C-contiguous and writeable")
    return records, plan, out_columns, status


# ---- JSON rows and Kafka record framing ------------------------------------------------------------
JSON_ROW_KINDS = {"i": 0, "f": 1, "b": 2, "O": 3}  # int64, float64, bool, object columns


def json_rows_arguments(keys: object, columns: object) -> tuple[list[bytes], list[np.ndarray], list[int], int]:
    """Check the arguments of `json_object_rows`: as many keys (bytes, each a quoted JSON string) as
    columns, every column 1-D int64, float64, bool or object and of one length. Returns the keys, the
    columns as C-contiguous arrays, their kind codes and the row count."""
    keys = list(keys)
    columns = list(columns)
    if len(keys) != len(columns):
        raise ValueError(f"json_object_rows needs one key per column, got {len(keys)} keys and {len(columns)} columns")
    for key in keys:
        if type(key) is not bytes or len(key) < 2 or key[:1] != b'"' or key[-1:] != b'"':
            raise TypeError(f"each key must be the JSON encoding of a column name (bytes like b'\"name\"'), got {key!r}")
    arrays, kinds = [], []
    for k, column in enumerate(columns):
        arr = column if isinstance(column, np.ndarray) else np.asarray(column)
        if arr.ndim != 1:
            raise ValueError(f"column {k} must be a 1-D array, got shape {arr.shape}")
        if arr.dtype not in (np.int64, np.float64, np.bool_, np.object_):
            raise TypeError(f"column {k} must be an int64, float64, bool or object array, got dtype {arr.dtype}")
        arrays.append(np.ascontiguousarray(arr))
        kinds.append(JSON_ROW_KINDS[arr.dtype.kind])
    n = same_length(**{f"column {k}": arr for k, arr in enumerate(arrays)}) if arrays else 0
    return keys, arrays, kinds, n


def _buffer_with_offsets(what: str, values: object, offsets: object) -> tuple[np.ndarray, np.ndarray]:
    """``values`` (bytes or a 1-D uint8 array) as an array, and ``offsets``: int64 positions into it that
    rise from 0 to its end without going back (item ``i`` is ``values[offsets[i]:offsets[i + 1]]``)."""
    if isinstance(values, (bytes, bytearray, memoryview)):
        values = np.frombuffer(values, dtype=np.uint8)
    buf = values if isinstance(values, np.ndarray) else np.asarray(values)
    if buf.ndim != 1 or buf.dtype != np.uint8:
        raise TypeError(f"{what} must be bytes or a 1-D uint8 array, got {getattr(buf, 'dtype', type(values))}")
    off = int64_column(f"{what} offsets", offsets)
    if len(off) == 0 or off[0] != 0 or off[-1] != len(buf) or bool((np.diff(off) < 0).any()):
        raise ValueError(f"{what} offsets must rise from 0 to len({what}) ({len(buf)}) without going back")
    return np.ascontiguousarray(buf), off


def kafka_records_arguments(values: object, offsets: object, timestamps: object, limit: object, rows: object = None,
                            keys: object = None, key_offsets: object = None) -> tuple:
    """Check the arguments of `kafka_record_batches`: ``values`` with ``offsets`` (n + 1 positions, see
    `_buffer_with_offsets`), ``timestamps`` n int64 milliseconds >= 0, a positive ``limit``, ``rows``
    int64 indices in [0, n) (default: all, in order) and optionally ``keys`` with n + 1 ``key_offsets``.
    Returns them as arrays (``keys`` and ``key_offsets`` None when not given)."""
    buf, off = _buffer_with_offsets("values", values, offsets)
    ts = int64_column("timestamps", timestamps)
    if len(off) != len(ts) + 1:
        raise ValueError(f"values offsets must hold one position more than timestamps ({len(ts) + 1}), got {len(off)}")
    return (buf, off, *_record_framing_arguments(ts, limit, rows, keys, key_offsets))


def kafka_json_records_arguments(keys: object, columns: object, timestamps: object, limit: object,
                                 rows: object = None, msg_keys: object = None, key_offsets: object = None) -> tuple:
    """Check the arguments of `kafka_json_record_batches`: ``keys`` and ``columns`` as
    `json_rows_arguments` checks them, at least one column, each holding one row per timestamp; the rest
    as `kafka_records_arguments` checks them (``msg_keys`` are its ``keys``). Returns the keys, columns
    and kind codes of `json_rows_arguments`, then timestamps, limit, rows, message keys and key offsets
    as `kafka_records_arguments` does."""
    keys, arrays, kinds, n = json_rows_arguments(keys, columns)
    if not arrays:
        raise ValueError("kafka_json_record_batches needs at least one column "
                         "(a message value is a JSON object of them)")
    ts = int64_column("timestamps", timestamps)
    if n != len(ts):
        raise ValueError(f"columns must hold one row per timestamp ({len(ts)}), got {n} rows")
    return (keys, arrays, kinds, *_record_framing_arguments(ts, limit, rows, msg_keys, key_offsets))


def _record_framing_arguments(ts: np.ndarray, limit: object, rows: object, keys: object, key_offsets: object) -> tuple:
    """The checks `kafka_records_arguments` and `kafka_json_records_arguments` share, for ``n =
    len(ts)`` messages; returns ``ts, limit, rows, keys, key_offsets``."""
    n = len(ts)
    if n and int(ts.min()) < 0:
        raise ValueError(f"timestamps must be >= 0 (Kafka CreateTime), got {int(ts.min())}")
    limit = integer("limit", limit)
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    if rows is None:
        rows = np.arange(n, dtype=np.int64)
    else:
        rows = int64_column("rows", rows)
        if len(rows) and (int(rows.min()) < 0 or int(rows.max()) >= n):
            raise ValueError(f"rows must be value indices in [0, {n})")
    if (keys is None) != (key_offsets is None):
        raise ValueError("keys and key_offsets go together")
    if keys is not None:
        keys, key_offsets = _buffer_with_offsets("keys", keys, key_offsets)
        if len(key_offsets) != n + 1:
            raise ValueError(f"keys offsets must hold one position more than timestamps ({n + 1}), got {len(key_offsets)}")
    return ts, limit, rows, keys, key_offsets


def kafka_key_partitions_arguments(keys: object, key_offsets: object, n_partitions: object
                                   ) -> tuple[np.ndarray, np.ndarray, int]:
    """Check the arguments of `kafka_key_partitions`: ``keys`` with ``key_offsets`` (see
    `_buffer_with_offsets`) and a partition count in [1, 2**31)."""
    keys, key_offsets = _buffer_with_offsets("keys", keys, key_offsets)
    n_partitions = integer("n_partitions", n_partitions)
    if not 1 <= n_partitions < 2**31:
        raise ValueError(f"n_partitions must be in [1, 2**31), got {n_partitions}")
    return keys, key_offsets, n_partitions


def crc32c_arguments(data: object, crc: object) -> tuple[memoryview, int]:
    """Check the arguments of `crc32c`: ``data`` any C-contiguous buffer (returned as a memoryview over
    it, which keeps it from being resized while summed) and ``crc`` an int in ``[0, 2**32)``."""
    try:
        view = memoryview(data)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"crc32c data must be a bytes-like object (bytes, bytearray, memoryview, a numpy array), "
                        f"got {type(data).__name__}") from None
    if not view.c_contiguous:
        shape, strides = view.shape, view.strides
        view.release()
        raise TypeError(f"crc32c data must be a C-contiguous buffer, got a {type(data).__name__} with shape "
                        f"{shape} and strides {strides}; copy it first (bytes(...) or numpy.ascontiguousarray)")
    if isinstance(crc, bool) or not isinstance(crc, (int, np.integer)):
        view.release()
        raise TypeError(f"crc32c crc must be an int (a previous crc32c result), got {crc!r}")
    crc = int(crc)
    if not 0 <= crc <= 0xFFFFFFFF:
        view.release()
        raise ValueError(f"crc32c crc must be in [0, 2**32), got {crc}")
    return view, crc
