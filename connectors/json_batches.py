"""Decoding a batch of JSON message values in one call: as whole values, or as columns of a few fields.

Both decoders join the values with ``b"\\n"`` and decode them with one msgspec ``decode_lines`` call.
``decode_lines`` reads a stream of whitespace-separated values, not one value per line (``b"1 2"`` gives
two values, a blank line none, and a value may continue on the next line), so the join is used only when
each value provably becomes exactly one element: the buffer holds exactly ``n - 1`` newlines (none inside
a value), each between ``}`` and ``{``, and it starts with ``{`` and ends with ``}``. Then the ``}``
ending a line is structural (a JSON string cannot hold a raw newline) and ``{`` cannot follow it inside a
container, so every line starts a new top-level value; with exactly ``n`` elements decoded, each line held
exactly one. Anything else (values that are not objects, tombstones, a decoding error) returns ``None``:
the caller then decodes message by message, finding the bad ones and routing them to dead letters.
"""

from __future__ import annotations

from typing import Any, Callable, Union

import msgspec
import numpy as np

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


# What each role of `engine.runtime.projection` accepts, as msgspec types (validated in C while decoding).
_ROLE_TYPES: dict[str, Any] = {"int": int, "key": Union[int, str], "number": Union[int, float]}


class JsonColumnDecoder:
    """Decode JSON object values into numpy columns of the ``fields`` (name -> role) only.

    Other fields of the objects are skipped by the decoder without being built. Columns: ``int64`` when
    every value of the field is an int in int64 range, ``float64`` for numbers with a float among them,
    ``object`` for keys with a str among them. `decode` returns ``None`` for a batch it cannot deliver
    that way (a value missing a field, of another type, an int out of range, not a JSON object): the
    caller decodes that batch as whole records, so its results and dead letters are those of the
    records path.
    """

    def __init__(self, fields: dict[str, str]) -> None:
        unknown = {role for role in fields.values() if role not in _ROLE_TYPES}
        if unknown:
            raise ValueError(f"unknown field roles {sorted(unknown)}; expected some of {sorted(_ROLE_TYPES)}")
        self.fields = dict(fields)
        # Attribute names f0, f1, ... renamed to the JSON names, so any field name works. gc=False: these
        # short-lived rows hold only ints, floats and strs, never cycles, and need no collector tracking.
        attributes = [(f"f{i}", _ROLE_TYPES[role]) for i, role in enumerate(self.fields.values())]
        row = msgspec.defstruct(
            "ProjectedRow", attributes, rename={f"f{i}": name for i, name in enumerate(self.fields)}, gc=False
        )
        self._decoder = msgspec.json.Decoder(row)
        self._getters = [(name, role, _attribute_lister(i)) for i, (name, role) in enumerate(self.fields.items())]

    def decode(self, values: list) -> dict[str, np.ndarray] | None:
        rows = decode_lines_exactly(self._decoder, values)
        if rows is None:
            return None
        columns: dict[str, np.ndarray] = {}
        for name, role, getter in self._getters:
            column = _column(getter(rows), role)
            if column is None:
                return None
            columns[name] = column
        return columns


def _attribute_lister(i: int) -> Callable[[list], list]:
    """``rows -> [row.f<i> for row in rows]``, compiled as a comprehension: a plain attribute load per row
    is several times cheaper than ``map(attrgetter(...))``. The source holds only an int we generate."""
    return eval(f"lambda rows: [row.f{int(i)} for row in rows]")  # noqa: S307


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
