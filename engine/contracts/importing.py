"""Create a `DataContract` from an existing Avro schema (for teams moving a Confluent topic under a contract).

Mapping: record -> the contract (nested records -> ``object`` fields keeping their names), ``string`` ->
string, ``int``/``long`` -> integer (``int`` gains the int32 bounds as constraints), ``float``/``double``
-> float, ``boolean``, ``bytes`` -> bytes, ``fixed`` -> bytes of exactly that length, ``enum``,
``array``, ``map``, ``long``/``timestamp-millis`` -> timestamp, ``int``/``date`` -> date, a union of
``null`` and one type -> a nullable field, ``doc`` -> description. A field with a default is optional and
keeps the default; one without is required. Unions of several non-null types have no contract type and
are refused with `ContractDefinitionError` naming the field.

``to_avro(contract_from_avro(s))`` gives back ``s`` for schemas that ``to_avro`` itself produces.
"""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any

import msgspec

from engine.contracts.avro_schema import Array, AvroType, Enum, Fixed, Map, Primitive, Record, Union_, parse_avro
from engine.contracts.errors import ContractDefinitionError
from engine.contracts.model import Constraints, DataContract, Field, FieldType

_EPOCH_DATE = datetime.date(1970, 1, 1)


def contract_from_avro(schema: str | dict, *, version: str = "1.0.0", name: str | None = None,
                       owner: str = "", status: str = "draft") -> DataContract:
    """A checked contract describing the records of Avro record ``schema``."""
    root = parse_avro(schema) if not isinstance(schema, AvroType) else schema
    if not isinstance(root, Record):
        raise ContractDefinitionError(f"a contract describes records; this Avro schema is a {root.describe()}")
    doc = schema if isinstance(schema, dict) else json.loads(schema) if isinstance(schema, str) else {}
    namespace = root.fullname.rsplit(".", 1)[0] if "." in root.fullname else ""
    return DataContract.build(
        name=name or root.name,
        version=version,
        namespace=namespace,
        owner=owner,
        status=status,
        description=doc.get("doc", "") if isinstance(doc, dict) else "",
        fields=_fields(root, doc.get("fields", []) if isinstance(doc, dict) else [], ""),
    )


def _fields(record: Record, raw_fields: list, path: str) -> tuple[Field, ...]:
    docs = {f.get("name"): f for f in raw_fields if isinstance(f, dict)}
    out = []
    for f in record.fields:
        fpath = f"{path}.{f.name}" if path else f.name
        raw = docs.get(f.name, {})
        ftype = _type(f.type, raw.get("type") if isinstance(raw, dict) else None, fpath)
        default: Any = msgspec.UNSET
        if f.has_default:
            default = _default(f.default, ftype, fpath)
        out.append(Field(name=f.name, type=ftype, required=not f.has_default, default=default,
                         description=raw.get("doc", "") if isinstance(raw, dict) else ""))
    return tuple(out)


def _type(t: AvroType, raw: Any, path: str) -> FieldType:
    if isinstance(t, Union_):
        others = [b for b in t.branches if b.kind != "null"]
        if len(others) != 1 or len(t.branches) > 2:
            raise ContractDefinitionError(f"union {t.describe()} has no contract type (only null + one type)",
                                          path=path)
        raw_branches = raw if isinstance(raw, list) else []
        raw_other = next((b for b in raw_branches if b != "null"), None)
        return msgspec.structs.replace(_type(others[0], raw_other, path), nullable=True)
    if isinstance(t, Primitive):
        logical = t.logical
        if t.kind == "long" and logical == "timestamp-millis":
            return FieldType("timestamp")
        if t.kind == "int" and logical == "date":
            return FieldType("date")
        if t.kind == "int":
            return FieldType("integer", constraints=Constraints(ge=-2**31, le=2**31 - 1))
        simple = {"long": "integer", "float": "float", "double": "float", "string": "string", "bytes": "bytes",
                  "boolean": "boolean"}
        if t.kind in simple:
            return FieldType(simple[t.kind])
        raise ContractDefinitionError(f"Avro type {t.describe()} has no contract type", path=path)
    if isinstance(t, Fixed):
        return FieldType("bytes", constraints=Constraints(min_length=t.size, max_length=t.size))
    if isinstance(t, Enum):
        return FieldType("enum", symbols=tuple(t.symbols))
    if isinstance(t, Array):
        return FieldType("array", items=_type(t.items, raw.get("items") if isinstance(raw, dict) else None,
                                              f"{path}[]"))
    if isinstance(t, Map):
        return FieldType("map", values=_type(t.values, raw.get("values") if isinstance(raw, dict) else None,
                                             f"{path}{{}}"))
    if isinstance(t, Record):
        raw_fields = raw.get("fields", []) if isinstance(raw, dict) else []
        return FieldType("object", fields=_fields(t, raw_fields, path), record_name=t.name)
    raise ContractDefinitionError(f"Avro type {t.describe()} has no contract type", path=path)


def _default(value: Any, t: FieldType, path: str) -> Any:
    """An Avro JSON default as the contract's (JSON-style) default for ``t``."""
    if value is None:
        return None
    if t.type == "date" and isinstance(value, int):
        return (_EPOCH_DATE + datetime.timedelta(days=value)).isoformat()
    if t.type == "bytes" and isinstance(value, str):
        return base64.b64encode(value.encode("latin-1")).decode("ascii")
    if t.type == "array" and isinstance(value, list):
        return [_default(v, t.items, path) for v in value]
    if t.type == "map" and isinstance(value, dict):
        return {k: _default(v, t.values, path) for k, v in value.items()}
    if t.type == "object" and isinstance(value, dict):
        by_name = {f.name: f for f in t.fields}
        return {k: _default(v, by_name[k].type, path) if k in by_name else v for k, v in value.items()}
    return value
