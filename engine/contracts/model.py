"""The data-contract model: plain, frozen msgspec Structs.

A `DataContract` names a stream's record shape (`Field` / `FieldType`), the constraints each value must
meet (`Constraints`), the service levels the producer promises (`SLA`) and the data-quality rules checked
over batches (`QualityRule`). Build one in code or load it from YAML/JSON with
`engine.contracts.load_contract`; either way the checks in `engine.contracts.parsing` run, so a contract
object that exists is consistent (no ``ge > le``, no default that breaks its own constraints, ...).

Field semantics:

- ``required=True``: the record must carry the field (``null`` only if ``nullable``).
- ``required=False``: the field may be absent; when absent, ``default`` is used if one is given,
  otherwise the value stays absent (it is not invented).
- ``nullable=True``: ``null`` is a valid value.

Type names: ``string integer float boolean timestamp date bytes enum array map object``. A
``timestamp`` is epoch milliseconds (int) or an RFC 3339 date-time string with a time zone; a ``date``
is an ISO ``YYYY-MM-DD`` string; ``bytes`` travel as base64 in JSON and raw in msgpack.
"""

from __future__ import annotations

from typing import Any

import msgspec

PRIMITIVE_TYPES = ("string", "integer", "float", "boolean", "timestamp", "date", "bytes")
COMPLEX_TYPES = ("enum", "array", "map", "object")
FIELD_TYPES = PRIMITIVE_TYPES + COMPLEX_TYPES
STATUSES = ("draft", "active", "deprecated", "retired")
SEVERITIES = ("error", "warning")
QUALITY_RULES = ("not_null", "between", "in_set", "regex", "unique", "freshness", "row_count")

# Which constraints make sense for which types; a constraint on another type is a definition error.
NUMERIC_CONSTRAINTS = ("ge", "gt", "le", "lt", "multiple_of")
LENGTH_CONSTRAINTS = ("min_length", "max_length")
CONSTRAINTS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "string": LENGTH_CONSTRAINTS + ("pattern", "allowed_values"),
    "integer": NUMERIC_CONSTRAINTS + ("allowed_values",),
    "float": NUMERIC_CONSTRAINTS,
    "boolean": (),
    "timestamp": (),
    "date": (),
    "bytes": LENGTH_CONSTRAINTS,
    "enum": (),
    "array": LENGTH_CONSTRAINTS,
    "map": LENGTH_CONSTRAINTS,
    "object": (),
}


class Constraints(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """Value constraints. Bounds are inclusive (``ge``/``le``) or exclusive (``gt``/``lt``); lengths
    count characters, bytes, items or entries; ``pattern`` is a regular expression searched anywhere in
    the string (anchor it with ``^...$`` to match the whole value, as in JSON Schema);
    ``allowed_values`` lists the only values accepted (strings or integers)."""

    ge: int | float | None = None
    gt: int | float | None = None
    le: int | float | None = None
    lt: int | float | None = None
    multiple_of: int | float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    allowed_values: tuple[str | int, ...] | None = None  # all strings or all integers (checked)

    def is_empty(self) -> bool:
        return all(v is None for v in msgspec.structs.astuple(self))


class FieldType(msgspec.Struct, frozen=True, omit_defaults=True):
    """The type of a value: a name from `FIELD_TYPES` plus what that type needs.

    ``symbols`` (enum), ``items`` (array element type), ``values`` (map value type; keys are strings),
    ``fields`` and ``record_name`` (object). ``nullable`` admits ``null``.
    """

    type: str
    nullable: bool = False
    constraints: Constraints | None = None
    symbols: tuple[str, ...] | None = None
    items: FieldType | None = None
    values: FieldType | None = None
    fields: tuple[Field, ...] | None = None
    record_name: str | None = None


class Field(msgspec.Struct, frozen=True, omit_defaults=True):
    """A named field of a record. ``default`` is ``msgspec.UNSET`` when the field has none (``None``
    is a real default: null)."""

    name: str
    type: FieldType
    required: bool = True
    default: Any = msgspec.UNSET
    description: str = ""
    tags: tuple[str, ...] = ()

    @property
    def has_default(self) -> bool:
        return self.default is not msgspec.UNSET


class SLA(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """Service levels the producer promises. Durations are milliseconds; ``availability`` is a percent."""

    latency_ms: int | None = None
    freshness_ms: int | None = None
    availability: float | None = None
    retention_ms: int | None = None


class QualityRule(msgspec.Struct, frozen=True, omit_defaults=True):
    """A data-quality rule checked over a batch of records (see `engine.contracts.quality`).

    ``rule`` is one of `QUALITY_RULES`. Parameters by rule: ``between`` uses ``min``/``max``
    (inclusive); ``in_set`` uses ``values``; ``regex`` uses ``pattern``; ``freshness`` uses
    ``max_age_ms`` against ``field`` (a timestamp); ``row_count`` uses ``min``/``max`` on the batch
    size. ``allowed_failure_fraction`` is the share of records that may fail before the rule fails;
    ``severity`` says whether a failure is an ``error`` or a ``warning``.
    """

    rule: str
    field: str | None = None
    severity: str = "error"
    allowed_failure_fraction: float = 0.0
    min: int | float | None = None
    max: int | float | None = None
    values: tuple[Any, ...] | None = None
    pattern: str | None = None
    max_age_ms: int | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or (f"{self.rule}({self.field})" if self.field else self.rule)


class DataContract(msgspec.Struct, frozen=True, omit_defaults=True):
    """A versioned agreement on a stream's records. Create it with `DataContract.build` (runs the
    consistency checks) or load it with `engine.contracts.load_contract`.

    ``additional_fields`` says what happens to fields the contract does not name: ``"allow"`` (the
    default: ignored, as Avro readers and open JSON Schemas do) or ``"forbid"`` (the record is invalid).
    """

    name: str
    version: str
    fields: tuple[Field, ...]
    owner: str = ""
    description: str = ""
    status: str = "active"
    tags: tuple[str, ...] = ()
    namespace: str = ""
    sla: SLA | None = None
    quality: tuple[QualityRule, ...] = ()
    additional_fields: str = "allow"

    @classmethod
    def build(cls, **kwargs: Any) -> DataContract:
        """Construct and check a contract; raises `ContractDefinitionError` naming the bad element."""
        from engine.contracts.checks import check_contract

        contract = cls(**kwargs)
        check_contract(contract)
        return contract

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"contract {self.name!r} has no field {name!r}")

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    # Conversions live in their own modules; these are conveniences.
    def to_dict(self) -> dict[str, Any]:
        from engine.contracts.serialization import contract_to_dict

        return contract_to_dict(self)

    def fingerprint(self) -> str:
        from engine.contracts.serialization import fingerprint

        return fingerprint(self)

    def compile(self):
        """The compiled validator for this contract version (built once, then cached)."""
        from engine.contracts.compiler import compile_contract

        return compile_contract(self)

    def to_json_schema(self) -> dict[str, Any]:
        from engine.contracts.export import to_json_schema

        return to_json_schema(self)

    def to_avro(self) -> dict[str, Any]:
        from engine.contracts.export import to_avro

        return to_avro(self)
