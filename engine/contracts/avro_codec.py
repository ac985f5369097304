"""Avro binary encoding and decoding over a parsed schema (`engine.contracts.avro_schema`).

Enough of the Avro specification for Confluent-framed Kafka messages: null, boolean, int/long (zig-zag
varints), float/double (little-endian IEEE 754), bytes/string (length-prefixed), fixed, enum (symbol
index), array and map (blocks, including negative-count blocks with a byte size), union (branch index)
and records (fields in order). Logical types ride on their base types; for ``timestamp-millis`` and
``date`` the encoder also accepts ``datetime``/``date`` objects; the decoder returns ``timestamp-millis``
as epoch milliseconds (what a contract's ``timestamp`` accepts) and ``date`` as a ``datetime.date``.

`encode(schema, value)` / `decode(schema, data)` raise `AvroCodecError` (a ``ValueError``) naming the
field path and the value when the datum does not fit the schema or the bytes are malformed.
"""

from __future__ import annotations

import datetime
import struct
from typing import Any

from engine.contracts.avro_schema import AvroType
from engine.contracts.errors import ContractError

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_FLOAT = struct.Struct("<f")
_DOUBLE = struct.Struct("<d")


class AvroCodecError(ContractError, ValueError):
    """A datum does not fit its Avro schema, or Avro bytes are malformed."""


# ----------------------------------------------------------------------------------------- encoding
def encode(schema: AvroType, value: Any) -> bytes:
    out = bytearray()
    _enc(schema, value, out, "")
    return bytes(out)


def _long(n: int, out: bytearray) -> None:
    z = (n << 1) ^ (n >> 63)
    while z & ~0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)


def _fail(path: str, message: str, value: Any) -> AvroCodecError:
    return AvroCodecError(f"{path or '<root>'}: {message} (got {value!r})")


def _matches(t: AvroType, v: Any) -> bool:
    """Whether ``v`` can be written as branch ``t`` of a union (first match wins, as in Avro libraries)."""
    k = t.kind
    if k == "null":
        return v is None
    if k == "boolean":
        return isinstance(v, bool)
    if k in ("int", "long"):
        return (isinstance(v, int) and not isinstance(v, bool)) or (
            getattr(t, "logical", None) in ("timestamp-millis", "timestamp-micros", "date")
            and isinstance(v, (datetime.date, datetime.datetime)))
    if k in ("float", "double"):
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if k == "string":
        return isinstance(v, str)
    if k in ("bytes", "fixed"):
        return isinstance(v, (bytes, bytearray))
    if k == "enum":
        return isinstance(v, str) and v in t.symbols
    if k == "array":
        return isinstance(v, (list, tuple))
    if k in ("map", "record"):
        return isinstance(v, dict)
    return False


def _to_int(t: AvroType, v: Any, path: str) -> int:
    logical = getattr(t, "logical", None)
    if isinstance(v, datetime.datetime) and logical in ("timestamp-millis", "timestamp-micros"):
        if v.tzinfo is None:
            raise _fail(path, "a timestamp needs a timezone", v)
        unit = datetime.timedelta(milliseconds=1) if logical == "timestamp-millis" else datetime.timedelta(microseconds=1)
        return (v - _EPOCH) // unit
    if isinstance(v, datetime.date) and not isinstance(v, datetime.datetime) and logical == "date":
        return (v - _EPOCH.date()).days
    if isinstance(v, bool) or not isinstance(v, int):
        raise _fail(path, f"expected {t.kind}", v)
    limit = 2**31 if t.kind == "int" else 2**63
    if not -limit <= v < limit:
        raise _fail(path, f"out of range for {t.kind}", v)
    return v


def _enc(t: AvroType, v: Any, out: bytearray, path: str) -> None:
    k = t.kind
    if k == "null":
        if v is not None:
            raise _fail(path, "expected null", v)
    elif k == "boolean":
        if not isinstance(v, bool):
            raise _fail(path, "expected a boolean", v)
        out.append(1 if v else 0)
    elif k in ("int", "long"):
        _long(_to_int(t, v, path), out)
    elif k in ("float", "double"):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _fail(path, f"expected {k}", v)
        out += (_FLOAT if k == "float" else _DOUBLE).pack(v)
    elif k in ("string", "bytes"):
        if k == "string" and isinstance(v, str):
            raw = v.encode("utf-8")
        elif isinstance(v, (bytes, bytearray)):
            raw = bytes(v)
        else:
            raise _fail(path, f"expected {k}", v)
        _long(len(raw), out)
        out += raw
    elif k == "fixed":
        if not isinstance(v, (bytes, bytearray)) or len(v) != t.size:
            raise _fail(path, f"expected {t.size} bytes", v)
        out += v
    elif k == "enum":
        if v not in t.symbols:
            raise _fail(path, f"not a symbol of enum {t.name}", v)
        _long(t.symbols.index(v), out)
    elif k == "array":
        if not isinstance(v, (list, tuple)):
            raise _fail(path, "expected an array", v)
        if v:
            _long(len(v), out)
            for i, item in enumerate(v):
                _enc(t.items, item, out, f"{path}[{i}]")
        out.append(0)
    elif k == "map":
        if not isinstance(v, dict):
            raise _fail(path, "expected a map", v)
        if v:
            _long(len(v), out)
            for key, item in v.items():
                if not isinstance(key, str):
                    raise _fail(path, "map keys must be strings", key)
                _enc_str(key, out)
                _enc(t.values, item, out, f"{path}[{key!r}]")
        out.append(0)
    elif k == "union":
        for i, branch in enumerate(t.branches):
            if _matches(branch, v):
                _long(i, out)
                _enc(branch, v, out, path)
                return
        raise _fail(path, f"matches no branch of {t.describe()}", v)
    elif k == "record":
        if not isinstance(v, dict):
            raise _fail(path, "expected a record (mapping)", v)
        for f in t.fields:
            fpath = f"{path}.{f.name}" if path else f.name
            if f.name in v:
                _enc(f.type, v[f.name], out, fpath)
            elif f.has_default:
                _enc(f.type, f.default if f.type.kind != "bytes" else f.default.encode("latin-1"), out, fpath)
            else:
                raise _fail(fpath, "required field is missing", None)
    else:  # pragma: no cover - the parser produces no other kinds
        raise _fail(path, f"unsupported type {k}", v)


def _enc_str(s: str, out: bytearray) -> None:
    raw = s.encode("utf-8")
    _long(len(raw), out)
    out += raw


# ----------------------------------------------------------------------------------------- decoding
class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes):
        self.data = memoryview(data)
        self.pos = 0

    def long(self) -> int:
        shift = 0
        z = 0
        while True:
            if self.pos >= len(self.data):
                raise AvroCodecError("truncated Avro data (in a varint)")
            b = self.data[self.pos]
            self.pos += 1
            z |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 63:
                raise AvroCodecError("malformed Avro varint (longer than 10 bytes)")
        return (z >> 1) ^ -(z & 1)

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise AvroCodecError(f"truncated Avro data (wanted {n} bytes at offset {self.pos})")
        chunk = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return chunk


def decode(schema: AvroType, data: bytes) -> Any:
    """Decode one datum; trailing bytes are an error (a Kafka message holds exactly one)."""
    reader = _Reader(data)
    value = _dec(schema, reader, "")
    if reader.pos != len(reader.data):
        raise AvroCodecError(f"{len(reader.data) - reader.pos} unexpected trailing byte(s) after the Avro datum")
    return value


def _blocks(r: _Reader):
    while True:
        count = r.long()
        if count == 0:
            return
        if count < 0:
            count = -count
            r.long()  # block size in bytes, for skipping; not needed when reading every item
        yield count


def _dec(t: AvroType, r: _Reader, path: str) -> Any:
    k = t.kind
    if k == "null":
        return None
    if k == "boolean":
        b = r.take(1)[0]
        if b > 1:
            raise AvroCodecError(f"{path or '<root>'}: invalid boolean byte {b}")
        return b == 1
    if k in ("int", "long"):
        n = r.long()
        if getattr(t, "logical", None) == "date":
            return _EPOCH.date() + datetime.timedelta(days=n)
        return n
    if k == "float":
        return _FLOAT.unpack(r.take(4))[0]
    if k == "double":
        return _DOUBLE.unpack(r.take(8))[0]
    if k == "bytes":
        return r.take(r.long())
    if k == "string":
        raw = r.take(r.long())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise AvroCodecError(f"{path or '<root>'}: string is not valid UTF-8") from None
    if k == "fixed":
        return r.take(t.size)
    if k == "enum":
        i = r.long()
        if not 0 <= i < len(t.symbols):
            raise AvroCodecError(f"{path or '<root>'}: enum index {i} out of range for {t.name}")
        return t.symbols[i]
    if k == "array":
        out = []
        for count in _blocks(r):
            for _ in range(count):
                out.append(_dec(t.items, r, f"{path}[{len(out)}]"))
        return out
    if k == "map":
        out_map = {}
        for count in _blocks(r):
            for _ in range(count):
                key = r.take(r.long()).decode("utf-8", "replace")
                out_map[key] = _dec(t.values, r, f"{path}[{key!r}]")
        return out_map
    if k == "union":
        i = r.long()
        if not 0 <= i < len(t.branches):
            raise AvroCodecError(f"{path or '<root>'}: union index {i} out of range")
        return _dec(t.branches[i], r, path)
    if k == "record":
        return {f.name: _dec(f.type, r, f"{path}.{f.name}" if path else f.name) for f in t.fields}
    raise AvroCodecError(f"unsupported Avro type {k}")  # pragma: no cover
