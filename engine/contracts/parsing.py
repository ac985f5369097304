"""Loading, checking, dumping and fingerprinting data contracts.

`load_contract` reads a YAML or JSON file (or `parse_contract` a mapping) into a `DataContract`, and
refuses anything malformed with a `ContractDefinitionError` that names the element's path, e.g.
``fields.price.constraints`` ("ge=10 is greater than le=5"). `dump_contract` writes the canonical
mapping back; `fingerprint` hashes a canonical form that ignores formatting, key order, field order and
the order of tags/sets (enum symbol order is kept: Avro gives it meaning).

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

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any, Mapping

import msgspec

from engine.contracts.errors import ContractDefinitionError
from engine.contracts.model import (
    CONSTRAINTS_BY_TYPE,
    FIELD_TYPES,
    QUALITY_RULES,
    SEVERITIES,
    SLA,
    STATUSES,
    Constraints,
    DataContract,
    Field,
    FieldType,
    QualityRule,
)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
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


class _Ctx:
    """Where we are while parsing: the source file (for messages and relative references)."""

    def __init__(self, source: str | None, base_dir: Path | None, seen: tuple[Path, ...] = ()):
        self.source = source
        self.base_dir = base_dir
        self.seen = seen

    def error(self, message: str, path: str) -> ContractDefinitionError:
        return ContractDefinitionError(message, path=path, source=self.source)


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
    _check_contract(contract, ctx)
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


# -------------------------------------------------------------------------------------------- checking
def check_contract(contract: DataContract, source: str | None = None) -> None:
    """Run every consistency check on ``contract``; raises `ContractDefinitionError` at the first problem."""
    _check_contract(contract, _Ctx(source, None))


def _check_contract(c: DataContract, ctx: _Ctx) -> None:
    if not c.name or not c.name.strip():
        raise ctx.error("a contract needs a non-empty name", "name")
    if not _SEMVER.match(c.version):
        raise ctx.error(f"version must be a semantic version MAJOR.MINOR.PATCH (e.g. 1.0.0), got {c.version!r}",
                        "version")
    if c.status not in STATUSES:
        raise ctx.error(f"status must be one of {', '.join(STATUSES)}, got {c.status!r}", "status")
    if c.additional_fields not in ("allow", "forbid"):
        raise ctx.error(f"additional_fields must be 'allow' or 'forbid', got {c.additional_fields!r}",
                        "additional_fields")
    if c.namespace and not all(_NAME.match(p) for p in c.namespace.split(".")):
        raise ctx.error(f"namespace must be dot-separated names, got {c.namespace!r}", "namespace")
    _check_fields(c.fields, "fields", ctx)
    if c.sla is not None:
        a = c.sla.availability
        if a is not None and not 0 <= a <= 100:
            raise ctx.error(f"availability is a percentage in [0, 100], got {a!r}", "sla.availability")
        for key in ("latency_ms", "freshness_ms", "retention_ms"):
            v = getattr(c.sla, key)
            if v is not None and (not isinstance(v, int) or v < 0):
                raise ctx.error(f"{key} must be a non-negative integer of milliseconds, got {v!r}", f"sla.{key}")
    for i, rule in enumerate(c.quality):
        _check_quality(rule, c, f"quality[{i}]", ctx)


def _check_fields(fields: tuple[Field, ...], path: str, ctx: _Ctx) -> None:
    if not fields:
        raise ctx.error("a record needs at least one field", path)
    seen = set()
    for f in fields:
        fpath = f"{path}.{f.name}"
        if not isinstance(f.name, str) or not _NAME.match(f.name):
            raise ctx.error(f"field name must match [A-Za-z_][A-Za-z0-9_]* (Avro names), got {f.name!r}", fpath)
        if f.name in seen:
            raise ctx.error(f"duplicate field name {f.name!r}", fpath)
        seen.add(f.name)
        _check_type(f.type, fpath, ctx)
        if f.has_default:
            if f.required:
                raise ctx.error("a required field cannot have a default (a default is used when the field is "
                                "absent); drop 'required: true' or the default", fpath)
            _check_value(f.default, f.type, f"{fpath}.default", ctx, "default")


def _check_type(t: FieldType, path: str, ctx: _Ctx) -> None:
    if t.type not in FIELD_TYPES:
        raise ctx.error(f"unknown type {t.type!r}; known types: {', '.join(FIELD_TYPES)}", f"{path}.type")
    if t.type == "enum":
        if not t.symbols:
            raise ctx.error("an enum needs at least one symbol", f"{path}.symbols")
        for s in t.symbols:
            if not isinstance(s, str) or not _NAME.match(s):
                raise ctx.error(f"enum symbols must match [A-Za-z_][A-Za-z0-9_]* (Avro names), got {s!r}",
                                f"{path}.symbols")
        if len(set(t.symbols)) != len(t.symbols):
            raise ctx.error(f"duplicate enum symbols in {list(t.symbols)}", f"{path}.symbols")
    if t.type == "array" and t.items is None:
        raise ctx.error("an array needs 'items'", path)
    if t.type == "map" and t.values is None:
        raise ctx.error("a map needs 'values'", path)
    if t.type == "object":
        if not t.fields:
            raise ctx.error("an object needs at least one field", f"{path}.fields")
        if t.record_name is not None and not _NAME.match(t.record_name):
            raise ctx.error(f"record_name must match [A-Za-z_][A-Za-z0-9_]*, got {t.record_name!r}", f"{path}.record_name")
        _check_fields(t.fields, f"{path}.fields", ctx)
    if t.items is not None:
        _check_type(t.items, f"{path}.items", ctx)
    if t.values is not None:
        _check_type(t.values, f"{path}.values", ctx)
    if t.constraints is not None:
        _check_constraints(t, path, ctx)


def _check_constraints(t: FieldType, path: str, ctx: _Ctx) -> None:
    c = t.constraints
    cpath = f"{path}.constraints"
    given = {k: v for k, v in msgspec.structs.asdict(c).items() if v is not None}
    allowed = CONSTRAINTS_BY_TYPE[t.type]
    for key in given:
        if key not in allowed:
            ok = ", ".join(allowed) or "none"
            raise ctx.error(f"constraint {key!r} does not apply to type {t.type!r} (applicable: {ok})", f"{cpath}.{key}")
    for key in ("ge", "gt", "le", "lt", "multiple_of"):
        v = given.get(key)
        if v is not None:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ctx.error(f"{key} must be a finite number, got {v!r}", f"{cpath}.{key}")
            if t.type == "integer" and isinstance(v, float) and key != "multiple_of" and not v.is_integer():
                pass  # a fractional bound on an integer is legal (ge=0.5 means ge=1); msgspec needs ints, see compiler
    if "ge" in given and "gt" in given:
        raise ctx.error("give either ge or gt, not both", cpath)
    if "le" in given and "lt" in given:
        raise ctx.error("give either le or lt, not both", cpath)
    lo_key = "ge" if "ge" in given else "gt" if "gt" in given else None
    hi_key = "le" if "le" in given else "lt" if "lt" in given else None
    if lo_key and hi_key:
        lo, hi = given[lo_key], given[hi_key]
        empty = lo > hi if (lo_key, hi_key) == ("ge", "le") else lo >= hi
        if empty:
            raise ctx.error(f"{lo_key}={lo!r} and {hi_key}={hi!r} leave no valid value", cpath)
    if "multiple_of" in given and given["multiple_of"] <= 0:
        raise ctx.error(f"multiple_of must be > 0, got {given['multiple_of']!r}", f"{cpath}.multiple_of")
    for key in ("min_length", "max_length"):
        v = given.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise ctx.error(f"{key} must be a non-negative integer, got {v!r}", f"{cpath}.{key}")
    if "min_length" in given and "max_length" in given and given["min_length"] > given["max_length"]:
        raise ctx.error(f"min_length={given['min_length']} is greater than max_length={given['max_length']}", cpath)
    if "pattern" in given:
        try:
            re.compile(given["pattern"])
        except re.error as exc:
            raise ctx.error(f"invalid regular expression {given['pattern']!r}: {exc}", f"{cpath}.pattern") from None
    if "allowed_values" in given:
        values = given["allowed_values"]
        if not values:
            raise ctx.error("allowed_values must not be empty", f"{cpath}.allowed_values")
        if len(set(values)) != len(values):
            raise ctx.error(f"duplicate allowed_values in {list(values)}", f"{cpath}.allowed_values")
        # each allowed value must itself pass the other constraints, or it could never be accepted
        rest = msgspec.structs.replace(c, allowed_values=None)
        plain = msgspec.structs.replace(t, constraints=rest, nullable=False)
        for v in values:
            _check_value(v, plain, f"{cpath}.allowed_values", ctx, "allowed value")


def _check_value(value: Any, t: FieldType, path: str, ctx: _Ctx, what: str) -> None:
    """Raise unless ``value`` (a JSON-style value) is valid for ``t`` including its constraints."""
    from engine.contracts.compiler import value_problem

    problem = value_problem(value, t)
    if problem is not None:
        hint = ""
        if isinstance(value, bool) and t.type in ("string", "enum"):
            hint = " (YAML reads unquoted yes/no/on/off as booleans: quote the value)"
        raise ctx.error(f"{what} {value!r} violates the field's type or constraints: {problem}{hint}", path)


def _check_quality(rule: QualityRule, c: DataContract, path: str, ctx: _Ctx) -> None:
    if rule.rule not in QUALITY_RULES:
        raise ctx.error(f"unknown quality rule {rule.rule!r}; known: {', '.join(QUALITY_RULES)}", f"{path}.rule")
    if rule.severity not in SEVERITIES:
        raise ctx.error(f"severity must be one of {', '.join(SEVERITIES)}, got {rule.severity!r}", f"{path}.severity")
    if not 0.0 <= rule.allowed_failure_fraction <= 1.0:
        raise ctx.error(f"allowed_failure_fraction must be in [0, 1], got {rule.allowed_failure_fraction!r}",
                        f"{path}.allowed_failure_fraction")
    needs_field = rule.rule != "row_count"
    if needs_field:
        if not rule.field:
            raise ctx.error(f"rule {rule.rule!r} needs 'field'", path)
        try:
            _resolve_field_path(c, rule.field)
        except KeyError:
            raise ctx.error(f"rule {rule.rule!r} refers to unknown field {rule.field!r}", f"{path}.field") from None
    elif rule.field:
        raise ctx.error("rule 'row_count' applies to the batch, not to a field", f"{path}.field")
    if rule.rule in ("between", "row_count"):
        if rule.min is None and rule.max is None:
            raise ctx.error(f"rule {rule.rule!r} needs 'min' and/or 'max'", path)
        if rule.min is not None and rule.max is not None and rule.min > rule.max:
            raise ctx.error(f"min={rule.min!r} is greater than max={rule.max!r}", path)
    if rule.rule == "in_set":
        if not rule.values:
            raise ctx.error("rule 'in_set' needs a non-empty 'values' list", path)
        target = _resolve_field_path(c, rule.field).type
        plain = msgspec.structs.replace(target, constraints=None, nullable=True)
        for v in rule.values:
            _check_value(v, plain, f"{path}.values", ctx, "in_set value")
    if rule.rule == "regex":
        if not rule.pattern:
            raise ctx.error("rule 'regex' needs 'pattern'", path)
        try:
            re.compile(rule.pattern)
        except re.error as exc:
            raise ctx.error(f"invalid regular expression {rule.pattern!r}: {exc}", f"{path}.pattern") from None
    if rule.rule == "freshness":
        if rule.max_age_ms is None or rule.max_age_ms < 0:
            raise ctx.error("rule 'freshness' needs a non-negative 'max_age' (e.g. '15m')", path)
        target = _resolve_field_path(c, rule.field)
        if target.type.type != "timestamp":
            raise ctx.error(f"rule 'freshness' needs a timestamp field, {rule.field!r} is {target.type.type!r}",
                            f"{path}.field")


def _resolve_field_path(c: DataContract, dotted: str) -> Field:
    fields = c.fields
    found = None
    for part in dotted.split("."):
        found = next((f for f in fields or () if f.name == part), None)
        if found is None:
            raise KeyError(dotted)
        fields = found.type.fields
    return found


# ------------------------------------------------------------------------------------------ dumping
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


# -------------------------------------------------------------------------------------- fingerprint
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
