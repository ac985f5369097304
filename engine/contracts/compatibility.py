"""Schema compatibility with Confluent Schema Registry semantics.

Modes (``new`` is the schema being registered, ``previous`` the registered versions, oldest first):

- ``BACKWARD``: a reader using ``new`` can read data written with the latest previous version.
- ``FORWARD``: a reader using the latest previous version can read data written with ``new``.
- ``FULL``: both. ``*_TRANSITIVE``: the same against *every* previous version, not only the latest.
- ``NONE``: no check.

Reader/writer rules by schema type:

- **Avro** (`avro_reader_problems`): Avro schema resolution. A reader field missing from the writer needs
  a default (``READER_FIELD_MISSING_DEFAULT_VALUE``); writer fields the reader lacks are skipped; the
  writer's type must be the reader's or promotable (int -> long -> float -> double, string <-> bytes,
  ``TYPE_MISMATCH`` otherwise); enum symbols the writer may send must exist in the reader unless the
  reader enum has a default (``MISSING_ENUM_SYMBOLS``); every writer union branch must be readable
  (``MISSING_UNION_BRANCH``); record/enum/fixed names must match (``NAME_MISMATCH``); fixed sizes match
  (``FIXED_SIZE_MISMATCH``). Records, arrays, maps and unions are checked recursively.
- **Contracts** (`contract_reader_problems`): the contract's Avro form under the Avro rules, plus the
  value constraints Avro cannot carry: the reader must accept every value the writer's constraints allow
  (a tightened bound, a new pattern or a removed allowed value is ``CONSTRAINT_NARROWED``), and a field
  the reader requires must not be optional for the writer (``REQUIRED_FIELD_ADDED``).
- **JSON Schema** (`json_reader_problems`): every document the writer schema accepts must be accepted by
  the reader schema, with Confluent's open/closed content-model rules: adding a property to an open
  content model (``PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL``), removing one from a closed content model
  (``PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL``), closing or narrowing ``additionalProperties``,
  narrowing types, enums, bounds, lengths and patterns are incompatible; the reverse changes are not.

Every problem is an `Incompatibility` naming the rule, the field path and what changed. The rule sets
live in `engine.contracts.rules` (``avro``, ``contract``, ``json_schema``).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

import msgspec

from engine.contracts.avro_schema import AvroType, parse_avro
from engine.contracts.errors import IncompatibleSchemaError
from engine.contracts.model import DataContract
from engine.contracts.rules import Incompatibility
from engine.contracts.rules.avro import avro_reader_problems
from engine.contracts.rules.contract import contract_reader_problems
from engine.contracts.rules.json_schema import json_reader_problems

__all__ = [
    "MODES",
    "Incompatibility",
    "avro_reader_problems",
    "check_compatibility",
    "check_modes",
    "contract_reader_problems",
    "ensure_compatible",
    "json_reader_problems",
    "normalize_mode",
]

MODES = ("BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE", "NONE")


def normalize_mode(mode: str) -> str:
    m = str(mode).upper()
    if m not in MODES:
        raise ValueError(f"unknown compatibility mode {mode!r}; known: {', '.join(MODES)}")
    return m


ReaderCheck = Callable[[Any, Any], list[Incompatibility]]


def check_modes(new: Any, previous: Sequence[Any], mode: str, reader_problems: ReaderCheck,
                versions: Sequence[int] | None = None) -> list[Incompatibility]:
    """Apply ``mode`` using ``reader_problems(reader, writer)``; ``previous`` is oldest first."""
    mode = normalize_mode(mode)
    if mode == "NONE" or not previous:
        return []
    versions = list(versions) if versions is not None else list(range(1, len(previous) + 1))
    pairs = list(zip(versions, previous))
    targets = pairs if mode.endswith("_TRANSITIVE") else pairs[-1:]
    base = mode.removesuffix("_TRANSITIVE")
    out: list[Incompatibility] = []
    for version, old in reversed(targets):
        if base in ("BACKWARD", "FULL"):
            for p in reader_problems(new, old):
                out.append(msgspec.structs.replace(p, version=version, direction="new schema reads old data"))
        if base in ("FORWARD", "FULL"):
            for p in reader_problems(old, new):
                out.append(msgspec.structs.replace(p, version=version, direction="old schema reads new data"))
    return out


def check_compatibility(new: Any, previous: Sequence[Any], mode: str, schema_type: str | None = None
                        ) -> list[Incompatibility]:
    """Problems (empty when compatible) registering ``new`` after ``previous`` (oldest first) under
    ``mode``. Schemas are `DataContract` objects, or Avro/JSON Schema documents (dicts, lists or JSON
    text) with ``schema_type`` ``"AVRO"`` (the default for documents) or ``"JSON"``."""
    kind = schema_type.upper() if schema_type else ("CONTRACT" if isinstance(new, DataContract) else "AVRO")
    if kind == "CONTRACT":
        return check_modes(new, previous, mode, contract_reader_problems)
    if kind == "AVRO":
        return check_modes(_avro(new), [_avro(p) for p in previous], mode, avro_reader_problems)
    if kind == "JSON":
        return check_modes(_json_doc(new), [_json_doc(p) for p in previous], mode, json_reader_problems)
    raise ValueError(f"schema_type must be AVRO, JSON or CONTRACT, got {schema_type!r}")


def ensure_compatible(new: Any, previous: Sequence[Any], mode: str, schema_type: str | None = None) -> None:
    """Raise `IncompatibleSchemaError` listing every broken rule, or return."""
    problems = check_compatibility(new, previous, mode, schema_type)
    if problems:
        listed = "; ".join(str(p) for p in problems)
        raise IncompatibleSchemaError(f"incompatible under {normalize_mode(mode)}: {listed}", problems)


def _avro(s: Any) -> AvroType:
    return s if isinstance(s, AvroType) else parse_avro(s)


def _json_doc(s: Any) -> Any:
    return json.loads(s) if isinstance(s, (str, bytes)) else s
