"""The contract check a stream calls once per batch: bytes or dicts in, (valid, dead letters) out.

This is the hook for ``stream.validate(contract)`` and ``KafkaSource(..., contract=...)``: the runtime
hands each micro-batch to a `BatchValidator` and routes the dead letters to the step's dead-letter
output. Nothing is lost silently: with ``on_invalid="raise"`` (for a step without a dead-letter output)
the first bad record raises `engine.errors.RecordError` naming the step, the field and the value.

>>> from engine.contracts import loads_contract
>>> check = BatchValidator(loads_contract("{name: t, version: 1.0.0, fields: [{name: n, type: integer}]}"),
...                        step="validate")
>>> valid, dead = check([b'{"n": 1}', {"n": "x"}])
>>> valid
[{'n': 1}]
>>> dead[0].reason
"n: Expected `int`, got `str` (got 'x')"
"""

from __future__ import annotations

from typing import Any, Iterable

import msgspec

from engine.contracts.compiler import ValidationIssue, compile_contract
from engine.contracts.model import DataContract
from engine.errors import RecordError


class DeadLetter(msgspec.Struct, frozen=True):
    """A record that failed its contract: the original input, where it was, and why."""

    record: Any
    index: int
    step: str
    contract: str
    version: str
    issues: tuple[ValidationIssue, ...]

    @property
    def reason(self) -> str:
        return "; ".join(str(i) for i in self.issues)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form for dead-letter sinks (bytes records are decoded as UTF-8, replacing errors)."""
        record = self.record
        if isinstance(record, (bytes, bytearray, memoryview)):
            record = bytes(record).decode("utf-8", "replace")
        return {"step": self.step, "contract": self.contract, "version": self.version, "index": self.index,
                "record": record, "reason": self.reason,
                "errors": [{"path": i.path, "message": i.message, "value": repr(i.value)} for i in self.issues]}


class BatchValidator:
    """Validate micro-batches against ``contract``.

    ``output``: ``"dict"`` (default, the engine's record form) or ``"struct"``. ``encoding``: ``"json"``
    (bytes/str items; mappings are accepted too) or ``"msgpack"``. ``wire_format=True`` expects Confluent
    framing (magic byte + schema id) before each payload. ``on_invalid``: ``"dead_letter"`` returns bad
    records, ``"raise"`` raises `RecordError` for the first one.
    """

    def __init__(self, contract: DataContract, *, step: str = "validate", output: str = "dict",
                 encoding: str = "json", wire_format: bool = False, on_invalid: str = "dead_letter",
                 registry: Any = None):
        if on_invalid not in ("dead_letter", "raise"):
            raise ValueError(f"on_invalid must be 'dead_letter' or 'raise', got {on_invalid!r}")
        if wire_format and encoding != "json":
            raise ValueError("wire_format=True carries JSON payloads; use encoding='json'")
        self.contract = contract
        self.validator = compile_contract(contract)
        self.step = step
        self.output = output
        self.encoding = encoding
        self.on_invalid = on_invalid
        self._deserializer = None
        if wire_format:
            from engine.contracts.wire import ContractDeserializer

            self._deserializer = ContractDeserializer(contract, registry, output=output)
        self.valid_count = 0
        self.invalid_count = 0

    def __call__(self, batch: Iterable[Any]) -> tuple[list[Any], list[DeadLetter]]:
        if self._deserializer is not None:
            result = self._deserializer.deserialize_many(batch)
        else:
            result = self.validator.validate_many(batch, output=self.output, encoding=self.encoding)
        dead = [DeadLetter(r.record, r.index, self.step, self.contract.name, self.contract.version, r.issues)
                for r in result.invalid]
        self.valid_count += len(result.valid)
        self.invalid_count += len(dead)
        if dead and self.on_invalid == "raise":
            first = dead[0]
            issue = first.issues[0]
            raise RecordError(
                f"step {self.step!r}: record {first.index} of the batch violates contract {self.contract.name!r} "
                f"{self.contract.version}: {first.reason}; attach a dead-letter output to keep going",
                step=self.step, field=issue.path or None, value=issue.value)
        return result.valid, dead

    def metrics(self) -> dict[str, int]:
        return {"valid_records": self.valid_count, "invalid_records": self.invalid_count}
