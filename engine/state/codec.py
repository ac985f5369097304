"""Checkpoint serialisation: msgspec msgpack with numpy arrays as raw buffers.

State is a tree of dicts, lists, str/int/float/bool/None/bytes, numpy arrays and (as keys may be)
tuples and frozensets. msgpack has no tuple, so tuples and frozensets travel as extension types and
come back as themselves (a tuple key must stay hashable); numpy arrays travel as an extension holding
dtype, shape and the raw bytes.
"""

from __future__ import annotations

import msgspec
import numpy as np

_ARRAY = 1
_TUPLE = 2
_FROZENSET = 3

_encoder = msgspec.msgpack.Encoder()


def _to_wire(obj):
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError(f"cannot checkpoint an object array (dtype {obj.dtype}); convert it to a list")
        arr = np.ascontiguousarray(obj)
        header = _encoder.encode((arr.dtype.str, list(arr.shape)))
        return msgspec.msgpack.Ext(_ARRAY, len(header).to_bytes(4, "little") + header + arr.tobytes())
    if isinstance(obj, dict):
        return {k: _to_wire(v) for k, v in obj.items()}
    if isinstance(obj, list):
        if all(type(x) in (str, int, float, bool, bytes) or x is None for x in obj):
            return obj  # the common case (keys, positions): no per-item rebuild
        return [_to_wire(x) for x in obj]
    if isinstance(obj, tuple):
        return msgspec.msgpack.Ext(_TUPLE, _encoder.encode([_to_wire(x) for x in obj]))
    if isinstance(obj, frozenset):
        return msgspec.msgpack.Ext(_FROZENSET, _encoder.encode([_to_wire(x) for x in obj]))
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _ext_hook(code: int, data: memoryview):
    if code == _ARRAY:
        n = int.from_bytes(data[:4], "little")
        dtype, shape = msgspec.msgpack.decode(data[4 : 4 + n])
        return np.frombuffer(data[4 + n :], dtype=np.dtype(dtype)).reshape(shape).copy()
    if code == _TUPLE:
        return tuple(_decoder.decode(data))
    if code == _FROZENSET:
        return frozenset(_decoder.decode(data))
    raise ValueError(f"unknown extension type {code} in checkpoint")


_decoder = msgspec.msgpack.Decoder(ext_hook=_ext_hook)


def encode(state: object) -> bytes:
    """Serialise a state tree; raises TypeError naming an unsupported value."""
    try:
        return _encoder.encode(_to_wire(state))
    except TypeError as exc:
        raise TypeError(f"state cannot be checkpointed: {exc}") from exc


def decode(data: bytes) -> object:
    return _decoder.decode(data)
