"""Consistency checks every `DataContract` passes, whether loaded from a file or built in code.

`check_contract` raises `ContractDefinitionError` naming the element's path at the first problem:
names and versions, unknown types, constraints that do not apply to a type or leave no valid value
(``ge > le``, ``min_length > max_length``, ...), invalid regular expressions, defaults and allowed values
that break their own field's type or constraints, and quality rules that refer to unknown fields or
have inconsistent parameters.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import msgspec

from engine.contracts.errors import ContractDefinitionError
from engine.contracts.model import (
    CONSTRAINTS_BY_TYPE,
    FIELD_TYPES,
    QUALITY_RULES,
    SEVERITIES,
    STATUSES,
    DataContract,
    Field,
    FieldType,
    QualityRule,
)

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")


class Ctx:
    """Where we are while parsing: the source file (for messages and relative references)."""

    def __init__(self, source: str | None, base_dir: Path | None, seen: tuple[Path, ...] = ()):
        self.source = source
        self.base_dir = base_dir
        self.seen = seen

    def error(self, message: str, path: str) -> ContractDefinitionError:
        return ContractDefinitionError(message, path=path, source=self.source)



def check_contract(contract: DataContract, source: str | None = None) -> None:
    """Run every consistency check on ``contract``; raises `ContractDefinitionError` at the first problem."""
    check_contract_in(contract, Ctx(source, None))


def check_contract_in(c: DataContract, ctx: Ctx) -> None:
    if not c.name or not c.name.strip():
        raise ctx.error("a contract needs a non-empty name", "name")
    if not SEMVER.match(c.version):
        raise ctx.error(f"version must be a semantic version MAJOR.MINOR.PATCH (e.g. 1.0.0), got {c.version!r}",
                        "version")
    if c.status not in STATUSES:
        raise ctx.error(f"status must be one of {', '.join(STATUSES)}, got {c.status!r}", "status")
    if c.additional_fields not in ("allow", "forbid"):
        raise ctx.error(f"additional_fields must be 'allow' or 'forbid', got {c.additional_fields!r}",
                        "additional_fields")
    if c.namespace and not all(NAME.match(p) for p in c.namespace.split(".")):
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


def _check_fields(fields: tuple[Field, ...], path: str, ctx: Ctx) -> None:
    if not fields:
        raise ctx.error("a record needs at least one field", path)
    seen = set()
    for f in fields:
        fpath = f"{path}.{f.name}"
        if not isinstance(f.name, str) or not NAME.match(f.name):
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


def _check_type(t: FieldType, path: str, ctx: Ctx) -> None:
    if t.type not in FIELD_TYPES:
        raise ctx.error(f"unknown type {t.type!r}; known types: {', '.join(FIELD_TYPES)}", f"{path}.type")
    if t.type == "enum":
        if not t.symbols:
            raise ctx.error("an enum needs at least one symbol", f"{path}.symbols")
        for s in t.symbols:
            if not isinstance(s, str) or not NAME.match(s):
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
        if t.record_name is not None and not NAME.match(t.record_name):
            raise ctx.error(f"record_name must match [A-Za-z_][A-Za-z0-9_]*, got {t.record_name!r}", f"{path}.record_name")
        _check_fields(t.fields, f"{path}.fields", ctx)
    if t.items is not None:
        _check_type(t.items, f"{path}.items", ctx)
    if t.values is not None:
        _check_type(t.values, f"{path}.values", ctx)
    if t.constraints is not None:
        _check_constraints(t, path, ctx)


def _check_constraints(t: FieldType, path: str, ctx: Ctx) -> None:
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


def _check_value(value: Any, t: FieldType, path: str, ctx: Ctx, what: str) -> None:
    """Raise unless ``value`` (a JSON-style value) is valid for ``t`` including its constraints."""
    from engine.contracts.compiler import value_problem

    problem = value_problem(value, t)
    if problem is not None:
        hint = ""
        if isinstance(value, bool) and t.type in ("string", "enum"):
            hint = " (YAML reads unquoted yes/no/on/off as booleans: quote the value)"
        raise ctx.error(f"{what} {value!r} violates the field's type or constraints: {problem}{hint}", path)


def _check_quality(rule: QualityRule, c: DataContract, path: str, ctx: Ctx) -> None:
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
            resolve_field_path(c, rule.field)
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
        target = resolve_field_path(c, rule.field).type
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
        target = resolve_field_path(c, rule.field)
        if target.type.type != "timestamp":
            raise ctx.error(f"rule 'freshness' needs a timestamp field, {rule.field!r} is {target.type.type!r}",
                            f"{path}.field")


def resolve_field_path(c: DataContract, dotted: str) -> Field:
    fields = c.fields
    found = None
    for part in dotted.split("."):
        found = next((f for f in fields or () if f.name == part), None)
        if found is None:
            raise KeyError(dotted)
        fields = found.type.fields
    return found

