"""Writing contracts: the file-format mapping, YAML/JSON text, and the canonical fingerprint.

`contract_to_dict` gives the document `engine.contracts.parsing` reads back; `dumps_contract` /
`dump_contract` write it as YAML or JSON; `fingerprint` hashes a canonical form that ignores formatting,
key order, field order and the order of tags and value sets (enum symbol order is kept: Avro gives it
meaning).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import msgspec

from engine.contracts.model import DataContract, Field, FieldType


def _type_to_dict(t: FieldType) -> dict[str, Any]:
    out: dict[str, Any] = {"type": t.type}
    if t.nullable:
        out["nullable"] = True
    if t.constraints is not None and not t.constraints.is_empty():
        cons = {k: v for k, v in msgspec.structs.asdict(t.constraints).items() if v is not None}
        if "allowed_values" in cons:
            cons["allowed_values"] = list(cons["allowed_values"])
        out["constraints"] = cons
    if t.symbols is not None:
        out["symbols"] = list(t.symbols)
    if t.items is not None:
        out["items"] = _type_to_dict(t.items)
    if t.values is not None:
        out["values"] = _type_to_dict(t.values)
    if t.fields is not None:
        out["fields"] = [_field_to_dict(f) for f in t.fields]
    if t.record_name:
        out["record_name"] = t.record_name
    return out


def _field_to_dict(f: Field) -> dict[str, Any]:
    out: dict[str, Any] = {"name": f.name}
    out.update(_type_to_dict(f.type))
    if not f.required:
        out["required"] = False
    if f.has_default:
        out["default"] = f.default
    if f.description:
        out["description"] = f.description
    if f.tags:
        out["tags"] = list(f.tags)
    return out


def contract_to_dict(c: DataContract) -> dict[str, Any]:
    """The file-format document of ``c`` (what `dump_contract` writes, what `parse_contract` reads)."""
    out: dict[str, Any] = {"name": c.name, "version": c.version}
    if c.namespace:
        out["namespace"] = c.namespace
    for key in ("owner", "description"):
        if getattr(c, key):
            out[key] = getattr(c, key)
    out["status"] = c.status
    if c.tags:
        out["tags"] = list(c.tags)
    if c.additional_fields != "allow":
        out["additional_fields"] = c.additional_fields
    out["fields"] = [_field_to_dict(f) for f in c.fields]
    if c.sla is not None:
        out["sla"] = msgspec.to_builtins(c.sla)
    if c.quality:
        out["quality"] = [msgspec.to_builtins(q) for q in c.quality]
    return out


def dumps_contract(c: DataContract, format: str = "yaml") -> str:
    """Serialise ``c`` as YAML or JSON text."""
    data = contract_to_dict(c)
    if format == "json":
        return json.dumps(data, indent=2, ensure_ascii=False, default=_json_default) + "\n"
    if format != "yaml":
        raise ValueError(f"format must be 'yaml' or 'json', got {format!r}")
    import yaml

    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    if any(ch in text for ch in "\x85\u2028\u2029"):
        # PyYAML writes these Unicode line breaks raw, and a reader folds them into spaces: escape instead
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=False)
    return text


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot serialise {value!r}")


def dump_contract(c: DataContract, path: str | Path) -> None:
    """Write ``c`` to ``path``: JSON for a ``.json`` suffix, YAML otherwise."""
    path = Path(path)
    fmt = "json" if path.suffix.lower() == ".json" else "yaml"
    path.write_text(dumps_contract(c, fmt), encoding="utf-8")



def _canonical_type(t: dict[str, Any]) -> dict[str, Any]:
    t = dict(t)
    if "fields" in t:
        t["fields"] = sorted((_canonical_field(f) for f in t["fields"]), key=lambda f: f["name"])
    for key in ("items", "values"):
        if key in t:
            t[key] = _canonical_type(t[key])
    cons = t.get("constraints")
    if cons and "allowed_values" in cons:
        cons = dict(cons)
        cons["allowed_values"] = sorted(cons["allowed_values"], key=repr)
        t["constraints"] = cons
    return t


def _canonical_field(f: dict[str, Any]) -> dict[str, Any]:
    f = _canonical_type(f)
    if "tags" in f:
        f["tags"] = sorted(set(f["tags"]))
    return f


def canonical_form(c: DataContract) -> bytes:
    """Canonical JSON bytes of ``c``: sorted keys, fields sorted by name, tags and value sets sorted.

    Two contracts that differ only in formatting, key order, field order or set order have the same
    canonical form; enum symbol order is kept (it is meaningful to Avro readers)."""
    data = contract_to_dict(c)
    data["fields"] = sorted((_canonical_field(f) for f in data["fields"]), key=lambda f: f["name"])
    if "tags" in data:
        data["tags"] = sorted(set(data["tags"]))
    if "quality" in data:
        qs = []
        for q in data["quality"]:
            if "values" in q:
                q = {**q, "values": sorted(q["values"], key=repr)}
            qs.append(q)
        data["quality"] = sorted(qs, key=lambda q: json.dumps(q, sort_keys=True, default=_json_default))
    return msgspec.json.encode(data, order="sorted", enc_hook=_json_default)


def fingerprint(c: DataContract) -> str:
    """SHA-256 (hex) of `canonical_form`."""
    return hashlib.sha256(canonical_form(c)).hexdigest()

