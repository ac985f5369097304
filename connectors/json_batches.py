"""Decoding a batch of JSON message values in one call: as whole values, or as columns of a few fields.

`decode_lines_exactly` (whole values) joins the values with ``b"\\n"`` and decodes them with one msgspec
``decode_lines`` call. ``decode_lines`` reads a stream of whitespace-separated values, not one value per
line (``b"1 2"`` gives two values, a blank line none, and a value may continue on the next line), so the
join is used only when each value provably becomes exactly one element: the buffer holds exactly
``n - 1`` newlines (none inside a value), each between ``}`` and ``{``, and it starts with ``{`` and ends
with ``}``. Then the ``}`` ending a line is structural (a JSON string cannot hold a raw newline) and
``{`` cannot follow it inside a container, so every line starts a new top-level value; with exactly
``n`` elements decoded, each line held exactly one.

`JsonColumnDecoder` (a few fields into numpy columns) reads the batch with the compiled flat-JSON kernel
(`engine.kernels.scan_flat_json`), which accepts a value only when msgspec would decode it to the same
values, and decodes the values the kernel leaves with msgspec (with `decode_lines_exactly` when it can,
else one by one).

Either returns ``None`` for a batch it cannot decode exactly (values that are not objects, tombstones, a
decoding error, a value that does not fit a column): the caller then decodes message by message, finding
the bad ones and routing them to dead letters.
"""

from __future__ import annotations

from typing import Any, Callable, Union

import msgspec
import numpy as np

from engine.kernels import FLAT_SECOND_TYPE, FlatField, scan_flat_json

__all__ = ["JsonColumnDecoder", "decode_lines_exactly"]

# msgspec's errors (ValidationError is a DecodeError), and UnicodeDecodeError for invalid UTF-8 in a string
_DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError)
_OPEN, _CLOSE, _NEWLINE = ord("{"), ord("}"), ord("\n")


def decode_lines_exactly(decoder: msgspec.json.Decoder, values: list) -> list | None:
    """``[decoder.decode(v) for v in values]`` in one C call, or ``None`` when that cannot be done
    exactly (a value is ``None``, is not one JSON object on one line, or does not decode)."""
    n = len(values)
    if not n:
        return []
    try:
        buffer = b"\n".join(values)
    except TypeError:  # a tombstone (None) value
        return None
    if not _one_object_per_line(buffer, n):
        return None
    try:
        decoded = decoder.decode_lines(buffer)
    except _DECODE_ERRORS:
        return None
    return decoded if len(decoded) == n else None


def _one_object_per_line(buffer: bytes, n: int) -> bool:
    """Whether ``buffer`` starts with ``{``, ends with ``}`` and has exactly ``n - 1`` newlines, each
    between ``}`` and ``{`` (one numpy pass and two gathers)."""
    raw = np.frombuffer(buffer, dtype=np.uint8)
    if raw.size == 0 or raw[0] != _OPEN or raw[-1] != _CLOSE:
        return False
    at = np.flatnonzero(raw == _NEWLINE)
    return at.size == n - 1 and bool((raw[at - 1] == _CLOSE).all()) and bool((raw[at + 1] == _OPEN).all())


# What each role of `engine.runtime.projection` accepts, as msgspec types (validated in C while decoding
# the records the flat-JSON kernel leaves to msgspec), and the kernel's kind for it.
_ROLE_TYPES: dict[str, Any] = {"int": int, "key": Union[int, str], "number": Union[int, float]}
_ROLE_KINDS = {"int": "int", "key": "key", "number": "number"}


class JsonColumnDecoder:
    """Decode JSON object values into numpy columns of the ``fields`` (name -> role) only.

    Other fields of the objects are skipped without being built. Columns: ``int64`` when every value of
    the field is an int in int64 range, ``float64`` for numbers with a float among them, ``object`` for
    keys with a str among them (holding the strs and ints as they are). `decode` returns ``None`` for a
    batch it cannot deliver that way (a value missing a field, of another type, an int out of range, not
    a JSON object): the caller decodes that batch as whole records, so its results and dead letters are
    those of the records path.

    How: the flat-JSON kernel (`engine.kernels.scan_flat_json`) reads the whole batch straight into
    numpy columns in one compiled pass, building no Python object per record (but a str key). The
    records it does not accept with certainty (escapes, non-ASCII, nulls, duplicate or missing keys,
    integers of more than 18 digits, ...) are decoded by msgspec into a projected Struct (all in one
    call when `decode_lines_exactly` allows, else one by one); when there are any, the columns are built
    from the values of both as Python lists, exactly as msgspec's values alone would give them
    (`_column`).
    """

    def __init__(self, fields: dict[str, str]) -> None:
        unknown = {role for role in fields.values() if role not in _ROLE_TYPES}
        if unknown:
            raise ValueError(f"unknown field roles {sorted(unknown)}; expected some of {sorted(_ROLE_TYPES)}")
        self.fields = dict(fields)
        self._flat_fields = [FlatField(name, _ROLE_KINDS[role]) for name, role in self.fields.items()]
        # Attribute names f0, f1, ... renamed to the JSON names, so any field name works. gc=False: these
        # short-lived rows hold only ints, floats and strs, never cycles, and need no collector tracking.
        attributes = [(f"f{i}", _ROLE_TYPES[role]) for i, role in enumerate(self.fields.values())]
        row = msgspec.defstruct(
            "ProjectedRow", attributes, rename={f"f{i}": name for i, name in enumerate(self.fields)}, gc=False
        )
        self._decoder = msgspec.json.Decoder(row)
        self._getters = [_attribute_lister(i) for i in range(len(self.fields))]

    def decode(self, values: list) -> dict[str, np.ndarray] | None:
        n = len(values)
        if not n:
            return self._from_lists([[] for _ in self.fields])
        parts = [_kernel_columns(role, n) for role in self.fields.values()]
        status = np.empty(n, dtype=np.uint8)
        accepted = scan_flat_json(values, self._flat_fields, parts, status, True)
        if accepted == n:
            return {name: _accepted_column(role, part) for (name, role), part in zip(self.fields.items(), parts)}
        return self._with_slow_records(values, parts, status, accepted)

    def scan(self, values: list) -> list | None:
        """The flat-JSON kernel's columns of ``values`` when it accepts every one of them, else ``None``
        (nothing else is tried: the caller keeps such values for `decode`). For `columns`."""
        n = len(values)
        parts = [_kernel_columns(role, n) for role in self.fields.values()]
        status = np.empty(n, dtype=np.uint8)
        return parts if scan_flat_json(values, self._flat_fields, parts, status, True) == n else None

    def columns(self, pieces: list[list]) -> dict[str, np.ndarray]:
        """The columns of consecutive value lists `scan` accepted (``pieces``: its results, in order):
        what `decode` gives for those lists joined."""
        columns = {}
        for k, (name, role) in enumerate(self.fields.items()):
            if len(pieces) == 1:
                part = pieces[0][k]
            elif role == "int":
                part = np.concatenate([piece[k] for piece in pieces])
            else:
                part = (np.concatenate([piece[k][0] for piece in pieces]),
                        np.concatenate([piece[k][1] for piece in pieces]))
            columns[name] = _accepted_column(role, part)
        return columns

    def _with_slow_records(self, values: list, parts: list, status: np.ndarray, accepted: int):
        """Decode the records the kernel left (``status`` FLAT_SLOW) with msgspec, or ``None`` when one
        does not decode; the columns from the values of both, as Python lists."""
        slow = np.flatnonzero(status).tolist()
        slow_values = [values[i] for i in slow] if accepted else values
        # one C call when those values allow it (see the module docstring), else one call per value
        rows = decode_lines_exactly(self._decoder, slow_values)
        if rows is None:
            try:
                rows = [self._decoder.decode(v) for v in slow_values]
            except (*_DECODE_ERRORS, TypeError):  # TypeError: a tombstone (None)
                return None
        if not accepted:
            return self._from_lists([getter(rows) for getter in self._getters])
        fast = np.flatnonzero(status == 0).tolist()
        lists = []
        for getter, role, part in zip(self._getters, self.fields.values(), parts):
            column: list = [None] * len(values)
            for i, value in zip(fast, _accepted_values(role, part, accepted)):
                column[i] = value
            for i, value in zip(slow, getter(rows)):
                column[i] = value
            lists.append(column)
        return self._from_lists(lists)

    def _from_lists(self, lists: list[list]) -> dict[str, np.ndarray] | None:
        columns: dict[str, np.ndarray] = {}
        for (name, role), values in zip(self.fields.items(), lists):
            column = _column(values, role)
            if column is None:
                return None
            columns[name] = column
        return columns


def _attribute_lister(i: int) -> Callable[[list], list]:
    """``rows -> [row.f<i> for row in rows]``, compiled as a comprehension: a plain attribute load per row
    is several times cheaper than ``map(attrgetter(...))``. The source holds only an int we generate."""
    return eval(f"lambda rows: [row.f{int(i)} for row in rows]")  # noqa: S307


def _kernel_columns(role: str, n: int):
    """The preallocated column(s) `scan_flat_json` fills for a field of ``role``."""
    if role == "number":
        return np.empty(n, dtype=np.int64), np.empty(n, dtype=np.float64)
    if role == "key":
        return np.empty(n, dtype=np.int64), np.empty(n, dtype=object)
    return np.empty(n, dtype=np.int64)


def _accepted_column(role: str, part) -> np.ndarray:
    """The column of a batch the kernel accepted whole: what `_column` gives for the same values."""
    if role == "int":
        return part
    ints, others = part
    if not len(ints) or ints.min() != FLAT_SECOND_TYPE:  # cheaper than a mask: no accepted int equals it
        return ints  # all ints (in int64 range, as the kernel reads them)
    second = ints == FLAT_SECOND_TYPE
    if role == "number":
        return others  # a float among them: all as float64, ints converted like numpy converts them
    if second.all():
        return others  # all keys are strs
    mixed = others.copy()  # ints and strs: the ints as Python ints beside the strs
    at = np.flatnonzero(~second)
    mixed[at] = _objects(ints[at].tolist())
    return mixed


def _accepted_values(role: str, part, accepted: int) -> list:
    """The first ``accepted`` rows of the kernel's column(s) as the Python values msgspec gives."""
    if role == "int":
        return part[:accepted].tolist()
    ints, others = part
    second = (ints[:accepted] == FLAT_SECOND_TYPE).tolist()
    return [o if s else i for i, o, s in zip(ints[:accepted].tolist(), others[:accepted].tolist(), second)]


def _column(values: list, role: str) -> np.ndarray | None:
    if role == "key" and values and type(values[0]) is str:
        return _objects(values)  # str keys: no detour through a fixed-width numpy str array
    # numpy infers int64 for ints in int64 range and float64 for ints mixed with floats (as the records
    # path's float64 conversion does); anything else (strs, bigger ints) is kind "U", "u" or "O".
    column = np.array(values)
    kind = column.dtype.kind
    if kind == "i":
        return column.astype(np.int64, copy=False)
    if role == "number":
        return column if kind == "f" else None  # an int out of range: the records path decides
    if role == "key":  # a str (or an int out of int64 range) among them: keys stay Python objects
        return _objects(values)
    return None  # an "int" field with an int out of range: the records path makes it a dead letter


def _objects(values: list) -> np.ndarray:
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column
