"""The envelope every service exchanges over the event bus.

An `Envelope` wraps one record (``payload``) with the metadata the platform needs to route, de-duplicate
and audit it: a stable ``id`` (the de-duplication key: the same record must keep the same id across
retries), the ``source`` it came from, its event ``time`` (int milliseconds since the epoch, as in the
rest of the engine), an optional ``schema_id`` naming its data contract, and free-form string
``headers`` (services add e.g. ``quality.violations`` or ``error``).

Envelopes are msgspec Structs: one shared msgpack encoder/decoder pair serialises them for Kafka, and
decoding validates the shape (a malformed message raises `EnvelopeDecodeError`, never a bare KeyError).
"""

from __future__ import annotations

import time as _time
import uuid
from typing import Any

import msgspec

from engine.errors import ServiceError


class EnvelopeDecodeError(ServiceError):
    """Bytes on the bus that are not a valid envelope."""


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """One record on the bus. ``payload`` is the record itself (a JSON-like mapping)."""

    id: str
    source: str
    time: int
    payload: dict[str, Any]
    schema_id: str | None = None
    headers: dict[str, str] = {}

    def with_payload(self, payload: dict[str, Any]) -> "Envelope":
        """A copy carrying ``payload``; id, source, time, schema and headers are kept."""
        return msgspec.structs.replace(self, payload=payload)

    def with_headers(self, **headers: str) -> "Envelope":
        """A copy with ``headers`` added (or replaced)."""
        return msgspec.structs.replace(self, headers={**self.headers, **headers})


def now_ms() -> int:
    """Wall-clock time in int milliseconds since the epoch."""
    return _time.time_ns() // 1_000_000


def new_id() -> str:
    """A fresh random envelope id (use a record key instead when the record has one)."""
    return uuid.uuid4().hex


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Envelope)
_json_encoder = msgspec.json.Encoder()


def encode(envelope: Envelope) -> bytes:
    """Serialise an envelope (msgpack)."""
    return _encoder.encode(envelope)


def decode(data: bytes) -> Envelope:
    """Deserialise and validate an envelope; raises `EnvelopeDecodeError` with the reason."""
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise EnvelopeDecodeError(f"not a valid envelope ({len(data)} bytes): {exc}") from None


def to_builtins(envelope: Envelope) -> dict[str, Any]:
    """The envelope as plain JSON-compatible Python objects (for HTTP responses)."""
    return msgspec.to_builtins(envelope)
