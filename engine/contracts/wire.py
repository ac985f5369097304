"""Confluent wire format bound to a contract: magic byte ``0``, 4-byte big-endian schema id, payload.

`ContractSerializer` validates records against a contract, encodes them as JSON and frames them with the
id the registry gives the contract's schema (registered on first use, or looked up when
``auto_register=False``). By default it registers the contract's JSON Schema export (``schema_format=
"json"``), so Confluent's own JSON deserializers read the messages; ``schema_format="contract"``
registers the contract document itself.

`ContractDeserializer` unframes and validates with the reader's contract. Its batch form never raises:
bad frames, unknown schema ids and invalid payloads become `InvalidRecord` dead letters with reasons.

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
from engine.contracts.export import to_json_schema
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

    def exists(self, schema_id: int) -> bool:
        try:
            self.registry.get_schema(schema_id)
        except SchemaRegistryError:
            return False
        except Exception as exc:  # a remote client's own "not found" error
            if getattr(exc, "http_status_code", None) == 404:
                return False
            raise
        return True


def _schema_for(contract: DataContract, schema_format: str) -> tuple[str, str]:
    if schema_format == "json":
        return json.dumps(to_json_schema(contract)), "JSON"
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

    def _id_problem(self, schema_id: int) -> str | None:
        if self._allowed is not None and schema_id not in self._allowed:
            return f"schema id {schema_id} is not one of the accepted writer schemas {sorted(self._allowed)}"
        if self._registry is not None:
            known = self._known.get(schema_id)
            if known is None:
                known = self._known[schema_id] = self._registry.exists(schema_id)
            if not known:
                return f"schema id {schema_id} is not registered"
        return None

    def deserialize(self, data: bytes) -> Any:
        """One message -> validated record; raises `ContractValidationError`."""
        result = self.deserialize_many([data])
        if result.invalid:
            raise ContractValidationError(self.contract.name, list(result.invalid[0].issues))
        return result.valid[0]

    def deserialize_many(self, messages: Iterable[bytes]) -> ValidationResult:
        """A batch of framed messages -> valid records and dead letters (never raises on bad input)."""
        items = list(messages)
        payloads: list[bytes] = []
        positions: list[int] = []
        invalid: list[InvalidRecord] = []
        for i, data in enumerate(items):
            try:
                schema_id, payload = unframe(data)
            except (ValueError, TypeError) as exc:
                invalid.append(InvalidRecord(i, data, (ValidationIssue("", str(exc), _head(data)),)))
                continue
            problem = self._id_problem(schema_id)
            if problem is not None:
                invalid.append(InvalidRecord(i, data, (ValidationIssue("", problem, schema_id),)))
                continue
            payloads.append(payload)
            positions.append(i)
        result = self.validator.validate_many(payloads, output=self.output)
        for bad in result.invalid:
            index = positions[bad.index]
            invalid.append(InvalidRecord(index, items[index], bad.issues))
        invalid.sort(key=lambda r: r.index)
        return ValidationResult(result.valid, invalid)


def _head(data: Any) -> Any:
    return bytes(data[:16]) if isinstance(data, (bytes, bytearray, memoryview)) else data
