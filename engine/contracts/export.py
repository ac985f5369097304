"""Export a `DataContract` to JSON Schema (draft 2020-12) and to an Avro schema.

Mapping (contract -> JSON Schema / Avro):

=============  ===========================================  ==========================================
contract       JSON Schema                                  Avro
=============  ===========================================  ==========================================
string         ``string`` (+minLength/maxLength/pattern)    ``string``
integer        ``integer`` (+minimum/maximum/...)           ``long``
float          ``number``                                   ``double``
boolean        ``boolean``                                  ``boolean``
timestamp      integer ms or ``date-time`` string           ``long`` / ``timestamp-millis``
date           ``string`` / ``date``                        ``int`` / ``date``
bytes          base64 ``string``                            ``bytes``
enum           ``enum``                                     ``enum`` named <Record><Field>
array / map    ``array`` / ``object`` + additionalProperties ``array`` / ``map``
object         nested ``object``                            nested ``record``
nullable       ``[T, "null"]``                              union with ``null``
=============  ===========================================  ==========================================

Avro has no "absent" value: an optional field without a default becomes ``["null", T]`` with default
``null``; a nullable field whose default is not null puts ``T`` first (Avro requires a union's default
to match its first branch). Avro cannot carry constraints; they are kept in JSON Schema only.
"""

from __future__ import annotations

import base64
import datetime
from typing import Any

import msgspec

from engine.contracts.model import DataContract, Field, FieldType

JSON_SCHEMA_DRAFT = "https://json-schema.org/draft/2020-12/schema"
# RFC 3339 with a mandatory offset: the same rule the validator applies (validators may ignore "format")
_RFC3339 = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _pascal(name: str) -> str:
    out = "".join(p[:1].upper() + p[1:] for p in name.replace("-", "_").split("_") if p)
    return out if out and not out[0].isdigit() else f"R{out}"


# ------------------------------------------------------------------------------------ JSON Schema
def to_json_schema(contract: DataContract) -> dict[str, Any]:
    """The contract as a JSON Schema 2020-12 document (constraints included)."""
    schema: dict[str, Any] = {"$schema": JSON_SCHEMA_DRAFT, "title": contract.name}
    if contract.description:
        schema["description"] = contract.description
    schema.update(_json_object(contract.fields, closed=contract.additional_fields == "forbid"))
    schema["x-contract-version"] = contract.version
    return schema


def _json_object(fields: tuple[Field, ...], closed: bool) -> dict[str, Any]:
    props = {}
    required = []
    for f in fields:
        s = _json_type(f.type)
        if f.has_default:
            s["default"] = _json_value(f.default)
        if f.description:
            s["description"] = f.description
        props[f.name] = s
        if f.required:
            required.append(f.name)
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    if closed:
        out["additionalProperties"] = False
    return out


def _json_value(value: Any) -> Any:
    return msgspec.to_builtins(value)  # datetime/date -> ISO strings, bytes -> base64


def _json_type(t: FieldType) -> dict[str, Any]:
    s = _json_base(t)
    if t.nullable:
        if "enum" in s:
            s["enum"] = list(s["enum"]) + [None]
            if isinstance(s.get("type"), str):
                s["type"] = [s["type"], "null"]
        elif isinstance(s.get("type"), str):
            s["type"] = [s["type"], "null"]
        else:
            s = {"anyOf": [s, {"type": "null"}]}
    return s


def _json_base(t: FieldType) -> dict[str, Any]:
    c = t.constraints
    kind = t.type
    s: dict[str, Any]
    if kind in ("string", "integer", "float"):
        s = {"type": {"string": "string", "integer": "integer", "float": "number"}[kind]}
        if c is not None:
            for key, target in (("ge", "minimum"), ("gt", "exclusiveMinimum"), ("le", "maximum"),
                                ("lt", "exclusiveMaximum"), ("multiple_of", "multipleOf"),
                                ("min_length", "minLength"), ("max_length", "maxLength"), ("pattern", "pattern")):
                v = getattr(c, key)
                if v is not None:
                    s[target] = v
            if c.allowed_values is not None:
                s["enum"] = list(c.allowed_values)
        return s
    if kind == "boolean":
        return {"type": "boolean"}
    if kind == "timestamp":
        return {"anyOf": [{"type": "integer", "description": "epoch milliseconds"},
                          {"type": "string", "format": "date-time", "pattern": _RFC3339}]}
    if kind == "date":
        return {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
    if kind == "bytes":
        return {"type": "string", "contentEncoding": "base64"}
    if kind == "enum":
        return {"type": "string", "enum": list(t.symbols)}
    if kind == "array":
        s = {"type": "array", "items": _json_type(t.items)}
        if c is not None:
            if c.min_length is not None:
                s["minItems"] = c.min_length
            if c.max_length is not None:
                s["maxItems"] = c.max_length
        return s
    if kind == "map":
        s = {"type": "object", "additionalProperties": _json_type(t.values)}
        if c is not None:
            if c.min_length is not None:
                s["minProperties"] = c.min_length
            if c.max_length is not None:
                s["maxProperties"] = c.max_length
        return s
    if kind == "object":
        return _json_object(t.fields, closed=False)
    raise ValueError(f"unknown type {kind!r}")


# ------------------------------------------------------------------------------------------ Avro
def to_avro(contract: DataContract) -> dict[str, Any]:
    """The contract as an Avro record schema (a JSON-compatible dict)."""
    name = _pascal(contract.name)
    record = _avro_record(contract.fields, name, contract.description)
    if contract.namespace:
        record = {"type": "record", "name": name, "namespace": contract.namespace,
                  **{k: v for k, v in record.items() if k not in ("type", "name")}}
    return record


def _avro_record(fields: tuple[Field, ...], name: str, doc: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"type": "record", "name": name}
    if doc:
        out["doc"] = doc
    out["fields"] = [_avro_field(f, name) for f in fields]
    return out


def _avro_field(f: Field, record_name: str) -> dict[str, Any]:
    base = _avro_base(f.type, record_name + _pascal(f.name), f.default if f.has_default else None)
    entry: dict[str, Any] = {"name": f.name}
    if f.description:
        entry["doc"] = f.description
    if f.type.nullable or (not f.required and not f.has_default):
        if f.has_default and f.default is not None:
            entry["type"] = [base, "null"]
            entry["default"] = _avro_default(f.default, f.type)
        else:
            entry["type"] = ["null", base]
            entry["default"] = None
    else:
        entry["type"] = base
        if f.has_default:
            entry["default"] = _avro_default(f.default, f.type)
    return entry


def _avro_base(t: FieldType, name: str, default: Any = None) -> Any:
    kind = t.type
    if kind == "string":
        return "string"
    if kind == "integer":
        return "long"
    if kind == "float":
        return "double"
    if kind == "boolean":
        return "boolean"
    if kind == "bytes":
        return "bytes"
    if kind == "timestamp":
        return {"type": "long", "logicalType": "timestamp-millis"}
    if kind == "date":
        return {"type": "int", "logicalType": "date"}
    if kind == "enum":
        return {"type": "enum", "name": name, "symbols": list(t.symbols)}
    if kind == "array":
        non_null = isinstance(default, list) and any(v is not None for v in default)
        return {"type": "array", "items": _avro_item(t.items, name + "Item", non_null)}
    if kind == "map":
        non_null = isinstance(default, dict) and any(v is not None for v in default.values())
        return {"type": "map", "values": _avro_item(t.values, name + "Value", non_null)}
    if kind == "object":
        return _avro_record(t.fields, t.record_name or name)
    raise ValueError(f"unknown type {kind!r}")


def _avro_item(t: FieldType, name: str, value_first: bool = False) -> Any:
    # strict Avro readers check a default's union members against the first branch: when the field's
    # default holds non-null items, the value type goes first
    base = _avro_base(t, name)
    if not t.nullable:
        return base
    return [base, "null"] if value_first else ["null", base]


def _avro_default(value: Any, t: FieldType) -> Any:
    """A contract default (JSON-style) in Avro's JSON default encoding for type ``t``."""
    if value is None:
        return None
    kind = t.type
    if kind == "timestamp":
        if isinstance(value, str):
            value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if isinstance(value, datetime.datetime):
            return (value - _EPOCH) // datetime.timedelta(milliseconds=1)
        return value
    if kind == "date":
        if isinstance(value, str):
            value = datetime.date.fromisoformat(value)
        return (value - _EPOCH.date()).days
    if kind == "bytes":
        raw = value if isinstance(value, bytes) else base64.b64decode(value)
        return raw.decode("latin-1")  # Avro encodes a bytes default as a string of code points 0-255
    if kind == "float":
        return float(value)
    if kind == "array":
        return [_avro_default(v, t.items) for v in value]
    if kind == "map":
        return {k: _avro_default(v, t.values) for k, v in value.items()}
    if kind == "object":
        by_name = {f.name: f for f in t.fields}
        out = {}
        for k, v in value.items():
            if k in by_name:
                out[k] = _avro_default(v, by_name[k].type)
        return out
    return value
