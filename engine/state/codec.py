"""Checkpoint serialisation: msgspec msgpack metadata plus raw numpy buffers.

State is a tree of dicts, lists, str/int/float/bool/None/bytes, numpy arrays and (as keys may be)
tuples and frozensets. msgpack has no tuple, so tuples and frozensets travel as extension types and
come back as themselves (a tuple key must stay hashable).

Layout of an encoded state (`encode_parts`; `encode` joins the parts)::

    u64 len(meta) | meta (msgpack) | zero padding | buffer 0 | padding | buffer 1 | ...

Every numpy array in the tree is replaced in the metadata by a small reference (dtype, shape, offset
and length of its buffer, relative to the first buffer) and its bytes follow the metadata unchanged,
each buffer starting on a 64-byte boundary of the encoded state. A read-only array is not copied: the
parts are its own memory, written to a file as it is (a checkpoint's background write reads it after
the cut). State that hands its arrays over marks them read-only with `frozen` (the kernels' snapshot
arrays, which nothing else holds). A writeable array (a user's record or accumulator, say) is copied
when it is encoded, at the cut, because its owner may still change it in place.
Decoding copies each array out of the encoded bytes, so decoded state never pins the whole file.

`decode_legacy` reads the earlier format (version 2 checkpoint files), in which arrays were inline
msgpack extensions.
"""

from __future__ import annotations

import msgspec
import numpy as np

__all__ = ["decode", "decode_legacy", "encode", "encode_parts", "frozen"]

_ARRAY = 1  # legacy (version 2): dtype, shape and bytes inline
_TUPLE = 2
_FROZENSET = 3
_ARRAY_REF = 4  # dtype, shape, offset and length of a raw buffer after the metadata

_ALIGN = 64
_HEADER = 8  # little-endian u64 length of the metadata

_encoder = msgspec.msgpack.Encoder()


def frozen(arrays: dict) -> dict:
    """Mark the numpy arrays among the values of ``arrays`` read-only and return ``arrays``: the codec
    then writes them without a copy. Only for arrays their owner never changes in place again."""
    for value in arrays.values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    return arrays


def _padding(n: int) -> int:
    return -n % _ALIGN


class _Writer:
    """One encoding: replaces arrays by references and collects their buffers in order."""

    __slots__ = ("buffers", "offset")

    def __init__(self) -> None:
        self.buffers: list[memoryview] = []
        self.offset = 0  # where the next buffer starts, relative to the first one

    def wire(self, obj):
        if isinstance(obj, np.ndarray):
            return self._array(obj)
        if isinstance(obj, dict):
            return {k: self.wire(v) for k, v in obj.items()}
        if isinstance(obj, list):
            if all(type(x) in (str, int, float, bool, bytes) or x is None for x in obj):
                return obj  # the common case (keys, positions): no per-item rebuild
            return [self.wire(x) for x in obj]
        if isinstance(obj, tuple):
            return msgspec.msgpack.Ext(_TUPLE, _encoder.encode([self.wire(x) for x in obj]))
        if isinstance(obj, frozenset):
            return msgspec.msgpack.Ext(_FROZENSET, _encoder.encode([self.wire(x) for x in obj]))
        if isinstance(obj, np.generic):
            return obj.item()
        return obj

    def _array(self, arr: np.ndarray) -> msgspec.msgpack.Ext:
        if arr.dtype.hasobject:
            raise TypeError(f"cannot checkpoint an object array (dtype {arr.dtype}); convert it to a list")
        shape = list(arr.shape)
        if not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr)  # a copy for a non-contiguous view (it makes 0-d 1-d)
        elif arr.flags.writeable:
            arr = arr.copy()  # its owner may change it after the cut: keep what it holds now
        data = memoryview(arr.reshape(-1).view(np.uint8))  # bytes of any plain dtype (datetime64 too)
        offset = self.offset
        self.buffers.append(data)
        self.offset += len(data) + _padding(len(data))
        ref = _encoder.encode((arr.dtype.str, shape, offset, len(data)))
        return msgspec.msgpack.Ext(_ARRAY_REF, ref)


def encode_parts(state: object) -> list:
    """Serialise a state tree into parts (bytes and memoryviews of the arrays, not copied) whose
    concatenation is the encoded state; raises TypeError naming an unsupported value."""
    writer = _Writer()
    try:
        meta = _encoder.encode(writer.wire(state))
    except TypeError as exc:
        raise TypeError(f"state cannot be checkpointed: {exc}") from exc
    head = len(meta).to_bytes(_HEADER, "little") + meta
    parts: list = [head]
    pad = _padding(len(head))
    if writer.buffers:
        parts.append(bytes(pad))
        for data in writer.buffers:
            if len(data):
                parts.append(data)
            if _padding(len(data)):
                parts.append(bytes(_padding(len(data))))
    return parts


def encode(state: object) -> bytes:
    """Serialise a state tree into one bytes object (see `encode_parts`)."""
    return b"".join(encode_parts(state))


class _Reader:
    """One decoding: resolves array references against the buffers after the metadata."""

    __slots__ = ("buffers", "decoder")

    def __init__(self, buffers: memoryview) -> None:
        self.buffers = buffers
        self.decoder = msgspec.msgpack.Decoder(ext_hook=self.ext)

    def ext(self, code: int, data: memoryview):
        if code == _ARRAY_REF:
            dtype, shape, offset, length = msgspec.msgpack.decode(data)
            if offset < 0 or offset + length > len(self.buffers):
                raise ValueError(f"array buffer [{offset}, {offset + length}) lies outside the encoded state")
            raw = self.buffers[offset : offset + length]
            return np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape).copy()
        return _common_ext(code, data, self.decoder)


def decode(data: bytes | bytearray | memoryview) -> object:
    """The state tree encoded by `encode` / `encode_parts`."""
    view = memoryview(data).cast("B")
    if len(view) < _HEADER:
        raise ValueError(f"encoded state too short ({len(view)} bytes)")
    n = int.from_bytes(view[:_HEADER], "little")
    if _HEADER + n > len(view):
        raise ValueError(f"metadata length {n} exceeds the encoded state ({len(view)} bytes)")
    start = _HEADER + n
    start += _padding(start)
    reader = _Reader(view[start:])
    return reader.decoder.decode(view[_HEADER : _HEADER + n])


def _common_ext(code: int, data: memoryview, decoder: msgspec.msgpack.Decoder):
    if code == _TUPLE:
        return tuple(decoder.decode(data))
    if code == _FROZENSET:
        return frozenset(decoder.decode(data))
    raise ValueError(f"unknown extension type {code} in checkpoint")


def _legacy_ext(code: int, data: memoryview):
    if code == _ARRAY:
        n = int.from_bytes(data[:4], "little")
        dtype, shape = msgspec.msgpack.decode(data[4 : 4 + n])
        return np.frombuffer(data[4 + n :], dtype=np.dtype(dtype)).reshape(shape).copy()
    return _common_ext(code, data, _legacy_decoder)


_legacy_decoder = msgspec.msgpack.Decoder(ext_hook=_legacy_ext)


def decode_legacy(data: bytes | memoryview) -> object:
    """A state tree of the version 2 format (one msgpack document with inline arrays)."""
    return _legacy_decoder.decode(data)
