"""Loading data contracts from YAML and JSON.

`load_contract` reads a YAML or JSON file (or `loads_contract` text, `parse_contract` a mapping) into a
`DataContract`, and refuses anything malformed with a `ContractDefinitionError` that names the element's
path, e.g. ``fields.price.constraints`` ("ge=10 and le=5 leave no valid value"); the consistency checks
are in `engine.contracts.checks`. Writing and fingerprinting are in `engine.contracts.serialization`
(re-exported here).

File format (YAML shown; JSON is the same document)::

    name: orders
    version: 1.2.0
    owner: checkout-team
    status: active            # draft | active | deprecated | retired
    tags: [sales]
    fields:                   # a list of fields, or a mapping name -> field
      - name: order_id
        type: string
        constraints: {min_length: 1, pattern: "^o-[0-9]+$"}
      - name: amount
        type: float
        constraints: {ge: 0}
      - name: state
        type: enum
        symbols: [NEW, PAID, SHIPPED]
      - name: note
        type: string
        nullable: true
        required: false
        default: null
      - name: items
        type: array
        items: {type: object, fields: [{name: sku, type: string}]}
    sla: {latency: 5s, freshness: 1h, availability: 99.9, retention: 7d}
    quality:
      - {rule: not_null, field: order_id}
      - {rule: between, field: amount, min: 0, max: 10000, allowed_failure_fraction: 0.01}

A field may reference another contract file with ``contract: other.yaml`` (path relative to the
referring file): its fields become the nested object's fields.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

import msgspec

from engine.contracts.checks import Ctx as _Ctx
from engine.contracts.checks import check_contract, check_contract_in
from engine.contracts.errors import ContractDefinitionError
from engine.contracts.model import FIELD_TYPES, SLA, Constraints, DataContract, Field, FieldType, QualityRule

from engine.contracts.serialization import (
    canonical_form,
    contract_to_dict,
    dump_contract,
    dumps_contract,
    fingerprint,
)

# loading, checking and writing contracts are one family for callers, so this module offers all of it
__all__ = [
    "canonical_form",
    "check_contract",
    "contract_to_dict",
    "dump_contract",
    "dumps_contract",
    "fingerprint",
    "load_contract",
    "loads_contract",
    "parse_contract",
    "parse_duration_ms",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}

_CONTRACT_KEYS = {
    "name", "version", "owner", "description", "status", "tags", "namespace", "fields", "sla", "quality",
    "additional_fields",
}
_FIELD_KEYS = {"name", "required", "default", "description", "tags"}
_TYPE_KEYS = {"type", "nullable", "constraints", "symbols", "items", "values", "fields", "record_name", "contract"}
_CONSTRAINT_ALIASES = {"enum": "allowed_values", "minimum": "ge", "maximum": "le", "exclusive_minimum": "gt",
                       "exclusive_maximum": "lt", "minLength": "min_length", "maxLength": "max_length"}
_SLA_KEYS = {"latency": "latency_ms", "freshness": "freshness_ms", "retention": "retention_ms",
             "latency_ms": "latency_ms", "freshness_ms": "freshness_ms", "retention_ms": "retention_ms",
             "availability": "availability"}


# --------------------------------------------------------------------------------------------- loading
def load_contract(path: str | Path) -> DataContract:
    """Load a contract from a ``.yaml``/``.yml`` or ``.json`` file; raises `ContractDefinitionError`."""
    path = Path(path)
    return _load_file(path, ())


def _load_file(path: Path, seen: tuple[Path, ...]) -> DataContract:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ContractDefinitionError(f"cannot read contract file: {exc.strerror or exc}", source=str(path)) from None
    fmt = "json" if path.suffix.lower() == ".json" else "yaml"
    data = _parse_text(text, fmt, str(path))
    ctx = _Ctx(str(path), path.parent, seen + (path.resolve(),))
    return _parse_contract(data, ctx)


def loads_contract(text: str | bytes, format: str = "yaml", source: str | None = None) -> DataContract:
    """Parse a contract from YAML or JSON text."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    data = _parse_text(text, format, source)
    return _parse_contract(data, _Ctx(source, None))


def parse_contract(data: Mapping[str, Any], source: str | None = None, base_dir: str | Path | None = None) -> DataContract:
    """Build a checked `DataContract` from a plain mapping (the file format's document)."""
    return _parse_contract(data, _Ctx(source, Path(base_dir) if base_dir else None))


def _parse_text(text: str, fmt: str, source: str | None) -> Any:
    if fmt == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ContractDefinitionError(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                                          source=source) from None
    if fmt != "yaml":
        raise ValueError(f"format must be 'yaml' or 'json', got {fmt!r}")
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ContractDefinitionError(f"malformed YAML: {problem}{where}", source=source) from None


def _parse_contract(data: Any, ctx: _Ctx) -> DataContract:
    if not isinstance(data, Mapping):
        raise ctx.error(f"a contract must be a mapping, got {type(data).__name__}", "")
    unknown = set(data) - _CONTRACT_KEYS
    if unknown:
        raise ctx.error(f"unknown contract keys {sorted(map(str, unknown))}; allowed: {sorted(_CONTRACT_KEYS)}", "")
    for key in ("name", "version", "fields"):
        if key not in data:
            raise ctx.error(f"missing required key {key!r}", "")
    name = _str(data["name"], "name", ctx)
    version = data["version"]
    if isinstance(version, (int, float)) and not isinstance(version, bool):
        version = str(version)  # YAML reads `version: 1.0` as a float; the semver check below explains
    version = _str(version, "version", ctx)
    fields = _parse_fields(data["fields"], "fields", ctx)
    sla = _parse_sla(data.get("sla"), ctx) if data.get("sla") is not None else None
    quality_raw = data.get("quality") or []
    if not isinstance(quality_raw, list):
        raise ctx.error(f"quality must be a list of rules, got {type(quality_raw).__name__}", "quality")
    quality = tuple(_parse_quality(q, f"quality[{i}]", ctx) for i, q in enumerate(quality_raw))
    contract = DataContract(
        name=name,
        version=version,
        fields=fields,
        owner=_str(data.get("owner", ""), "owner", ctx),
        description=_str(data.get("description", "") or "", "description", ctx),
        status=_str(data.get("status", "active"), "status", ctx),
        tags=_str_tuple(data.get("tags") or [], "tags", ctx),
        namespace=_str(data.get("namespace", "") or "", "namespace", ctx),
        sla=sla,
        quality=quality,
        additional_fields=_str(data.get("additional_fields", "allow"), "additional_fields", ctx),
    )
    check_contract_in(contract, ctx)
    return contract


def _str(value: Any, path: str, ctx: _Ctx) -> str:
    if not isinstance(value, str):
        raise ctx.error(f"expected a string, got {value!r}", path)
    return value


def _str_tuple(value: Any, path: str, ctx: _Ctx) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ctx.error(f"expected a list of strings, got {value!r}", path)
    return tuple(value)


def _parse_fields(raw: Any, path: str, ctx: _Ctx) -> tuple[Field, ...]:
    if isinstance(raw, Mapping):
        items = []
        for name, spec in raw.items():
            if isinstance(spec, str):
                spec = {"type": spec}
            if not isinstance(spec, Mapping):
                raise ctx.error(f"field {name!r} must be a mapping, got {spec!r}", f"{path}.{name}")
            if "name" in spec and spec["name"] != name:
                raise ctx.error(f"field key {name!r} and its name {spec['name']!r} differ", f"{path}.{name}")
            items.append({**spec, "name": name})
    elif isinstance(raw, list):
        items = list(raw)
    else:
        raise ctx.error(f"fields must be a list or a mapping, got {type(raw).__name__}", path)
    if not items:
        raise ctx.error("a record needs at least one field", path)
    fields = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ctx.error(f"a field must be a mapping, got {item!r}", f"{path}[{i}]")
        name = item.get("name")
        if not isinstance(name, str):
            raise ctx.error(f"a field needs a string 'name', got {name!r}", f"{path}[{i}]")
        fields.append(_parse_field(item, f"{path}.{name}", ctx))
    return tuple(fields)


def _parse_field(spec: Mapping[str, Any], path: str, ctx: _Ctx) -> Field:
    unknown = set(spec) - _FIELD_KEYS - _TYPE_KEYS
    if unknown:
        raise ctx.error(f"unknown field keys {sorted(map(str, unknown))}; allowed: {sorted(_FIELD_KEYS | _TYPE_KEYS)}", path)
    type_spec = {k: v for k, v in spec.items() if k in _TYPE_KEYS}
    ftype = _parse_type(type_spec, path, ctx)
    required = spec.get("required", True)
    if not isinstance(required, bool):
        raise ctx.error(f"required must be true or false, got {required!r}", f"{path}.required")
    has_default = "default" in spec
    if has_default and "required" not in spec:
        required = False  # a default only makes sense for a field that may be absent
    return Field(
        name=spec["name"],
        type=ftype,
        required=required,
        default=spec["default"] if has_default else msgspec.UNSET,
        description=_str(spec.get("description", "") or "", f"{path}.description", ctx),
        tags=_str_tuple(spec.get("tags") or [], f"{path}.tags", ctx),
    )


def _parse_type(spec: Any, path: str, ctx: _Ctx) -> FieldType:
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, Mapping):
        raise ctx.error(f"a type must be a name or a mapping, got {spec!r}", path)
    unknown = set(spec) - _TYPE_KEYS
    if unknown:
        raise ctx.error(f"unknown type keys {sorted(map(str, unknown))}; allowed: {sorted(_TYPE_KEYS)}", path)
    if "contract" in spec:
        return _referenced_contract_type(spec, path, ctx)
    tname = spec.get("type")
    if tname is None:
        raise ctx.error("missing 'type'", path)
    if not isinstance(tname, str) or tname not in FIELD_TYPES:
        raise ctx.error(f"unknown type {tname!r}; known types: {', '.join(FIELD_TYPES)}", f"{path}.type")
    nullable = spec.get("nullable", False)
    if not isinstance(nullable, bool):
        raise ctx.error(f"nullable must be true or false, got {nullable!r}", f"{path}.nullable")
    constraints = _parse_constraints(spec.get("constraints"), f"{path}.constraints", ctx)
    symbols = items = values = fields = None
    if tname == "enum":
        if "symbols" not in spec:
            raise ctx.error("an enum needs 'symbols'", path)
        symbols = _str_tuple(spec["symbols"], f"{path}.symbols", ctx)
    if tname == "array":
        if "items" not in spec:
            raise ctx.error("an array needs 'items' (the element type)", path)
        items = _parse_type(spec["items"], f"{path}.items", ctx)
    if tname == "map":
        if "values" not in spec:
            raise ctx.error("a map needs 'values' (the value type; keys are strings)", path)
        values = _parse_type(spec["values"], f"{path}.values", ctx)
    if tname == "object":
        if "fields" not in spec:
            raise ctx.error("an object needs 'fields'", path)
        fields = _parse_fields(spec["fields"], f"{path}.fields", ctx)
    for key, needed_by in (("symbols", "enum"), ("items", "array"), ("values", "map"), ("fields", "object")):
        if key in spec and tname != needed_by:
            raise ctx.error(f"{key!r} only applies to type {needed_by!r}, not {tname!r}", f"{path}.{key}")
    record_name = spec.get("record_name")
    if record_name is not None:
        record_name = _str(record_name, f"{path}.record_name", ctx)
    return FieldType(type=tname, nullable=nullable, constraints=constraints, symbols=symbols, items=items,
                     values=values, fields=fields, record_name=record_name)


def _referenced_contract_type(spec: Mapping[str, Any], path: str, ctx: _Ctx) -> FieldType:
    ref = spec["contract"]
    if not isinstance(ref, str):
        raise ctx.error(f"'contract' must be a file path, got {ref!r}", f"{path}.contract")
    if set(spec) - {"contract", "nullable"}:
        raise ctx.error("a 'contract' reference takes only 'nullable' besides it", path)
    if ctx.base_dir is None:
        raise ctx.error(f"cannot resolve contract reference {ref!r}: the contract was not loaded from a file", path)
    target = (ctx.base_dir / ref).resolve()
    if target in ctx.seen:
        raise ctx.error(f"contract reference cycle through {ref!r}", f"{path}.contract")
    nested = _load_file(target, ctx.seen)
    nullable = spec.get("nullable", False)
    if not isinstance(nullable, bool):
        raise ctx.error(f"nullable must be true or false, got {nullable!r}", f"{path}.nullable")
    return FieldType(type="object", nullable=nullable, fields=nested.fields, record_name=_pascal(nested.name))


def _pascal(name: str) -> str:
    parts = re.split(r"[^A-Za-z0-9]+", name)
    out = "".join(p[:1].upper() + p[1:] for p in parts if p)
    return out if out and not out[0].isdigit() else f"R{out}"


def _parse_constraints(raw: Any, path: str, ctx: _Ctx) -> Constraints | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ctx.error(f"constraints must be a mapping, got {raw!r}", path)
    data = {}
    for key, value in raw.items():
        canonical = _CONSTRAINT_ALIASES.get(key, key)
        if canonical in data:
            raise ctx.error(f"constraint {canonical!r} given twice", path)
        data[canonical] = value
    known = set(Constraints.__struct_fields__)
    unknown = set(data) - known
    if unknown:
        raise ctx.error(f"unknown constraints {sorted(map(str, unknown))}; known: {sorted(known)}", path)
    if isinstance(data.get("allowed_values"), list):
        data["allowed_values"] = tuple(data["allowed_values"])
    for key in ("ge", "gt", "le", "lt", "multiple_of"):
        v = data.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ctx.error(f"{key} must be a number, got {v!r}", f"{path}.{key}")
    for key in ("min_length", "max_length"):
        v = data.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise ctx.error(f"{key} must be an integer, got {v!r}", f"{path}.{key}")
    if data.get("pattern") is not None and not isinstance(data["pattern"], str):
        raise ctx.error(f"pattern must be a string, got {data['pattern']!r}", f"{path}.pattern")
    av = data.get("allowed_values")
    if av is not None and not isinstance(av, tuple):
        raise ctx.error(f"allowed_values must be a list, got {av!r}", f"{path}.allowed_values")
    return Constraints(**data)


def parse_duration_ms(value: Any, path: str = "", source: str | None = None) -> int:
    """``5000`` (ms), ``"250ms"``, ``"5s"``, ``"2m"``, ``"1h"``, ``"7d"``, ``"1w"`` -> milliseconds."""
    if isinstance(value, bool):
        raise ContractDefinitionError(f"expected a duration, got {value!r}", path=path, source=source)
    if isinstance(value, int):
        ms = value
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        ms = round(float(m.group(1)) * _UNIT_MS[m.group(2)])
    else:
        raise ContractDefinitionError(
            f"expected a duration (int milliseconds or e.g. '250ms', '5s', '2m', '1h', '7d'), got {value!r}",
            path=path, source=source)
    if ms < 0:
        raise ContractDefinitionError(f"a duration cannot be negative, got {value!r}", path=path, source=source)
    return ms


def _parse_sla(raw: Any, ctx: _Ctx) -> SLA:
    if not isinstance(raw, Mapping):
        raise ctx.error(f"sla must be a mapping, got {raw!r}", "sla")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        target = _SLA_KEYS.get(key)
        if target is None:
            raise ctx.error(f"unknown SLA key {key!r}; known: latency, freshness, availability, retention", "sla")
        if target == "availability":
            if isinstance(value, str) and value.strip().endswith("%"):
                value = value.strip()[:-1]
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ctx.error(f"availability must be a percentage, got {value!r}", "sla.availability") from None
            out[target] = value
        else:
            out[target] = parse_duration_ms(value, f"sla.{key}", ctx.source)
    return SLA(**out)


def _parse_quality(raw: Any, path: str, ctx: _Ctx) -> QualityRule:
    if not isinstance(raw, Mapping):
        raise ctx.error(f"a quality rule must be a mapping, got {raw!r}", path)
    data = dict(raw)
    if "type" in data and "rule" not in data:
        data["rule"] = data.pop("type")
    if "max_age" in data:
        data["max_age_ms"] = parse_duration_ms(data.pop("max_age"), f"{path}.max_age", ctx.source)
    if isinstance(data.get("values"), list):
        data["values"] = tuple(data["values"])
    known = set(QualityRule.__struct_fields__)
    unknown = set(data) - known
    if unknown:
        raise ctx.error(f"unknown quality-rule keys {sorted(map(str, unknown))}; known: {sorted(known)}", path)
    if "rule" not in data:
        raise ctx.error("a quality rule needs 'rule'", path)
    try:
        return msgspec.convert(data, QualityRule)
    except msgspec.ValidationError as exc:
        raise ctx.error(f"invalid quality rule: {exc}", path) from None


