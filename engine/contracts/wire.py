"""Confluent wire format bound to a contract: magic byte ``0``, 4-byte big-endian schema id, payload.

`ContractSerializer` validates records against a contract, encodes them and frames them with the id the
registry gives the contract's schema (registered on first use, or looked up when ``auto_register=False``):

- ``schema_format="json"`` (default): JSON payloads under the contract's JSON Schema export, readable by
  Confluent's ``JSONDeserializer``;
- ``schema_format="avro"``: Avro binary payloads under the contract's Avro export, readable by
  Confluent's ``AvroDeserializer`` (and any Avro consumer);
- ``schema_format="contract"``: JSON payloads under the contract document itself.

`ContractDeserializer` unframes and validates with the reader's contract. With a registry it looks up
each writer schema id once: Avro payloads are decoded with the writer's schema (fields the reader lacks
are dropped, missing ones take the reader contract's defaults), JSON payloads are validated directly.
Its batch form never raises: bad frames, unknown schema ids and invalid payloads become `InvalidRecord`
dead letters with reasons.

The registry is either an embedded `SchemaRegistry` or a ``confluent_kafka`` ``SchemaRegistryClient``
talking to any Confluent-compatible server (such as ``engine registry serve``).
"""

from __future__ import annotations

import json
import struct
from typing import Any, Iterable, Mapping

import msgspec

from engine.contracts.compiler import InvalidRecord, ValidationIssue, ValidationResult, compile_contract
from engine.contracts.errors import ContractValidationError, SchemaRegistryError
from engine.contracts.avro_codec import AvroCodecError, decode as avro_decode, encode as avro_encode
from engine.contracts.avro_schema import parse_avro
from engine.contracts.export import to_avro, to_json_schema
from engine.contracts.model import DataContract

MAGIC = 0
HEADER = struct.Struct(">bI")


def frame(schema_id: int, payload: bytes) -> bytes:
    """``payload`` prefixed with the Confluent header for ``schema_id``."""
    return HEADER.pack(MAGIC, schema_id) + payload


def unframe(data: bytes) -> tuple[int, bytes]:
    """``(schema_id, payload)``; raises ``ValueError`` for data without a valid Confluent header."""
    if len(data) < HEADER.size:
        raise ValueError(f"message of {len(data)} bytes is shorter than the 5-byte Confluent header")
    magic, schema_id = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ValueError(f"unknown magic byte {magic} (expected 0): not Confluent wire format")
    return schema_id, bytes(data[HEADER.size:])


class _Registry:
    """Adapts an embedded `SchemaRegistry` or a confluent-kafka ``SchemaRegistryClient``."""

    def __init__(self, registry: Any):
        self.registry = registry
        self.remote = hasattr(registry, "register_schema")

    def register(self, subject: str, schema: str, schema_type: str) -> int:
        if self.remote:
            from confluent_kafka.schema_registry import Schema

            return self.registry.register_schema(subject, Schema(schema, schema_type))
        return self.registry.register(subject, schema, schema_type).id

    def lookup(self, subject: str, schema: str, schema_type: str) -> int:
        if self.remote:
            from confluent_kafka.schema_registry import Schema

            return self.registry.lookup_schema(subject, Schema(schema, schema_type)).schema_id
        return self.registry.lookup(subject, schema, schema_type).id

    def schema(self, schema_id: int) -> tuple[str, str] | None:
        """``(schema_type, schema_text)`` of ``schema_id``, or ``None`` when it is not registered."""
        try:
            found = self.registry.get_schema(schema_id)
        except SchemaRegistryError:
            return None
        except Exception as exc:  # a remote client's own "not found" error
            if getattr(exc, "http_status_code", None) == 404:
                return None
            raise
        if self.remote:
            return (found.schema_type or "AVRO"), found.schema_str
        return found.schema_type, found.schema


def _schema_for(contract: DataContract, schema_format: str) -> tuple[str, str]:
    if schema_format == "json":
        return json.dumps(to_json_schema(contract)), "JSON"
    if schema_format == "avro":
        return json.dumps(to_avro(contract)), "AVRO"
    if schema_format == "contract":
        return json.dumps(contract.to_dict(), default=str), "CONTRACT"
    raise ValueError(f"schema_format must be 'json' or 'contract', got {schema_format!r}")


class ContractSerializer:
    """Validate, encode (JSON) and frame records for ``subject`` (e.g. ``"orders-value"``)."""

    def __init__(self, contract: DataContract, registry: Any, subject: str, *, schema_format: str = "json",
                 auto_register: bool = True):
        self.contract = contract
        self.validator = compile_contract(contract)
        self.subject = subject
        self.schema_text, self.schema_type = _schema_for(contract, schema_format)
        self._registry = _Registry(registry)
        self.auto_register = auto_register
        self._header: bytes | None = None
        if self.schema_type == "AVRO":
            avro_type = parse_avro(self.schema_text)
            to_dict = self.validator.to_dict
            self._encode = lambda record: avro_encode(avro_type, to_dict(record))
        else:
            self._encode = msgspec.json.Encoder().encode

    @property
    def schema_id(self) -> int:
        if self._header is None:
            if self.auto_register:
                schema_id = self._registry.register(self.subject, self.schema_text, self.schema_type)
            else:
                schema_id = self._registry.lookup(self.subject, self.schema_text, self.schema_type)
            self._header = HEADER.pack(MAGIC, schema_id)
        return HEADER.unpack(self._header)[1]

    def serialize(self, record: Mapping[str, Any] | msgspec.Struct) -> bytes:
        """Frame one record; raises `ContractValidationError` when it breaks the contract."""
        if not isinstance(record, self.validator.struct_type):
            record = self.validator.validate_python(record)
        self.schema_id  # noqa: B018 - registers on first use
        return self._header + self._encode(record)

    def serialize_many(self, records: Iterable[Any]) -> tuple[list[bytes], list[InvalidRecord]]:
        """Frame a batch; invalid records come back as dead letters instead of raising."""
        valid, invalid = self.validator.validate_many(list(records))
        self.schema_id  # noqa: B018
        header = self._header
        encode = self._encode
        return [header + encode(r) for r in valid], invalid


class ContractDeserializer:
    """Unframe and validate messages with the reader's ``contract``.

    With a ``registry``, schema ids are checked to exist (once per id); ``allowed_ids`` restricts the
    writer schemas accepted. Without either, any id is accepted and only the payload is validated.
    """

    def __init__(self, contract: DataContract, registry: Any = None, *, allowed_ids: Iterable[int] | None = None,
                 output: str = "struct"):
        self.contract = contract
        self.validator = compile_contract(contract)
        self._registry = _Registry(registry) if registry is not None else None
        self._allowed = set(allowed_ids) if allowed_ids is not None else None
        self._known: dict[int, bool] = {}
        self.output = output

    def _writer(self, schema_id: int) -> tuple[str | None, Any]:
        """(problem, Avro writer schema or None for JSON payloads) for a writer schema id, cached."""
        if self._allowed is not None and schema_id not in self._allowed:
            return f"schema id {schema_id} is not one of the accepted writer schemas {sorted(self._allowed)}", None
        if self._registry is None:
            return None, None
        known = self._known.get(schema_id)
        if known is None:
            found = self._registry.schema(schema_id)
            if found is None:
                known = (f"schema id {schema_id} is not registered", None)
            elif found[0] == "AVRO":
                known = (None, parse_avro(found[1]))
            else:
                known = (None, None)
            self._known[schema_id] = known
        return known

    def deserialize(self, data: bytes) -> Any:
        """One message -> validated record; raises `ContractValidationError`."""
        result = self.deserialize_many([data])
        if result.invalid:
            raise ContractValidationError(self.contract.name, list(result.invalid[0].issues))
        return result.valid[0]

    def deserialize_many(self, messages: Iterable[bytes]) -> ValidationResult:
        """A batch of framed messages -> valid records and dead letters (never raises on bad input)."""
        items = list(messages)
        payloads: list[Any] = []  # JSON bytes, or dicts decoded from Avro
        positions: list[int] = []
        invalid: list[InvalidRecord] = []
        for i, data in enumerate(items):
            try:
                schema_id, payload = unframe(data)
            except (ValueError, TypeError) as exc:
                invalid.append(InvalidRecord(i, data, (ValidationIssue("", str(exc), _head(data)),)))
                continue
            problem, avro_type = self._writer(schema_id)
            if problem is not None:
                invalid.append(InvalidRecord(i, data, (ValidationIssue("", problem, schema_id),)))
                continue
            if avro_type is not None:
                try:
                    payload = _null_as_absent(avro_decode(avro_type, payload), self.contract.fields)
                except AvroCodecError as exc:
                    invalid.append(InvalidRecord(i, data, (ValidationIssue("", f"malformed Avro: {exc}", _head(payload)),)))
                    continue
            payloads.append(payload)
            positions.append(i)
        result = self.validator.validate_many(payloads, output=self.output)
        for bad in result.invalid:
            index = positions[bad.index]
            invalid.append(InvalidRecord(index, items[index], bad.issues))
        invalid.sort(key=lambda r: r.index)
        return ValidationResult(result.valid, invalid)


def _null_as_absent(value: Any, fields: tuple) -> Any:
    """Avro cannot leave a field out: the Avro export writes an optional field without a default as
    ``null``. For the reader's fields that may be absent but not null, a null therefore means "absent"."""
    if not isinstance(value, dict):
        return value
    for f in fields:
        if f.name not in value:
            continue
        v = value[f.name]
        if v is None and not f.required and not f.type.nullable:
            del value[f.name]
        elif f.type.type == "object":
            _null_as_absent(v, f.type.fields)
        elif f.type.type == "array" and f.type.items.type == "object" and isinstance(v, list):
            for item in v:
                _null_as_absent(item, f.type.items.fields)
        elif f.type.type == "map" and f.type.values.type == "object" and isinstance(v, dict):
            for item in v.values():
                _null_as_absent(item, f.type.values.fields)
    return value


def _head(data: Any) -> Any:
    return bytes(data[:16]) if isinstance(data, (bytes, bytearray, memoryview)) else data
