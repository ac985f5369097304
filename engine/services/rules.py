"""Data-quality rules: a small msgspec model with the data-contracts layer's rule names and parameters.

Rules are a tagged union on ``rule`` (``{"rule": "between", "field": "amount", "min": 0}``), so a list
loaded from YAML/JSON converts with `parse_rules`, and a contract's rule list maps over one-to-one.
Every rule has ``severity`` (``"error"``: a violating record is quarantined; ``"warn"``: counted and
alerted, the record passes) and ``allowed_failure_fraction`` (the share of records that may fail before
the rule counts as breached for a batch or window, which raises an alert).

Record rules and their semantics (a missing field reads as null):

- ``not_null(field)``: the value is present and not null.
- ``between(field, min=None, max=None)``: a number (not a bool) with ``min <= value <= max``; null passes
  (pair with not_null), a non-number fails.
- ``in_set(field, values)``: the value is one of ``values``; null passes.
- ``regex(field, pattern)``: a string in which ``pattern`` matches (``re.search``; anchor with ^...$ for
  whole-value matches); null passes, a non-string fails.
- ``unique(field, window=100000)``: no other envelope id carried the same value among the last
  ``window`` distinct values seen (bounded memory); null passes. A redelivery of the same envelope is not
  a duplicate.
- ``freshness(max_age_ms, field=None)``: the record's time (``field``, int ms, or the envelope's time)
  is at most ``max_age_ms`` older than the wall clock when it is checked.

Batch rule: ``row_count(min=None, max=None)``: the batch size is within bounds (never quarantines).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Annotated, Any, Literal, Union

import msgspec

from engine.errors import ServiceError
from engine.services.envelope import Envelope

Severity = Literal["error", "warn"]
Fraction = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class RuleDefinitionError(ServiceError):
    """A rule list that does not validate; the message names the rule and the field."""


class BaseRule(msgspec.Struct, kw_only=True, frozen=True, tag_field="rule"):
    severity: Severity = "error"
    allowed_failure_fraction: Fraction = 0.0

    @property
    def name(self) -> str:
        field = getattr(self, "field", None)
        return f"{self.__struct_config__.tag}({field})" if field else self.__struct_config__.tag


class NotNull(BaseRule, frozen=True, tag="not_null"):
    field: str


class Between(BaseRule, frozen=True, tag="between"):
    field: str
    min: float | None = None
    max: float | None = None

    def __post_init__(self):
        if self.min is None and self.max is None:
            raise ValueError("between needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"between: min {self.min} > max {self.max}")


class InSet(BaseRule, frozen=True, tag="in_set"):
    field: str
    values: list[Any]


class Regex(BaseRule, frozen=True, tag="regex"):
    field: str
    pattern: str

    def __post_init__(self):
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"regex pattern {self.pattern!r} does not compile: {exc}") from None


class Unique(BaseRule, frozen=True, tag="unique"):
    field: str
    window: Annotated[int, msgspec.Meta(ge=1)] = 100_000


class Freshness(BaseRule, frozen=True, tag="freshness"):
    max_age_ms: Annotated[int, msgspec.Meta(ge=0)]
    field: str | None = None


class RowCount(BaseRule, frozen=True, tag="row_count"):
    min: Annotated[int, msgspec.Meta(ge=0)] | None = None
    max: Annotated[int, msgspec.Meta(ge=0)] | None = None


Rule = Union[NotNull, Between, InSet, Regex, Unique, Freshness, RowCount]
RECORD_RULES = (NotNull, Between, InSet, Regex, Unique, Freshness)


def parse_rules(raw: Any) -> list[Rule]:
    """Validate a list of rule mappings (e.g. from YAML) into rule objects."""
    try:
        return msgspec.convert(raw, list[Rule])
    except msgspec.ValidationError as exc:
        raise RuleDefinitionError(f"invalid quality rules: {exc}") from None


_RULE_PARAMETERS = {
    "not_null": (),
    "between": ("min", "max"),
    "in_set": ("values",),
    "regex": ("pattern",),
    "unique": (),
    "freshness": ("max_age_ms",),
    "row_count": ("min", "max"),
}


def rules_from_contract(contract: Any) -> list[Rule]:
    """The quality rules of a data contract (`engine.contracts.DataContract`) as service rules.

    Names and parameters are the same in both layers; the contract's ``warning`` severity is ``warn``
    here. A contract rule this layer does not know raises `RuleDefinitionError` naming it.
    """
    raw = []
    for rule in contract.quality:
        if rule.rule not in _RULE_PARAMETERS:
            raise RuleDefinitionError(f"contract {contract.name!r}: quality rule {rule.rule!r} is not supported here")
        item: dict[str, Any] = {
            "rule": rule.rule,
            "severity": "warn" if rule.severity == "warning" else rule.severity,
            "allowed_failure_fraction": rule.allowed_failure_fraction,
        }
        if rule.field is not None:
            item["field"] = rule.field
        for name in _RULE_PARAMETERS[rule.rule]:
            value = getattr(rule, name)
            if value is not None:
                item[name] = list(value) if name == "values" else value
        raw.append(item)
    return parse_rules(raw)


class Violation(msgspec.Struct, frozen=True):
    rule: str  # e.g. "between(amount)"
    severity: Severity
    message: str


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class RuleChecker:
    """Evaluates record rules; holds the bounded memory the ``unique`` rules need."""

    def __init__(self, rules: list[Rule]):
        self.rules = list(rules)
        self.record_rules = [r for r in self.rules if isinstance(r, RECORD_RULES)]
        self.batch_rules = [r for r in self.rules if isinstance(r, RowCount)]
        self._patterns = {id(r): re.compile(r.pattern) for r in self.rules if isinstance(r, Regex)}
        self._sets = {}
        for r in self.rules:
            if isinstance(r, InSet):
                try:
                    self._sets[id(r)] = frozenset(r.values)
                except TypeError:
                    self._sets[id(r)] = None  # unhashable members: fall back to a list scan
        self._seen: dict[int, OrderedDict] = {id(r): OrderedDict() for r in self.rules if isinstance(r, Unique)}

    def check(self, env: Envelope, now_ms: int) -> list[Violation]:
        """The violations of ``env`` (empty when it passes every record rule)."""
        out = []
        payload = env.payload
        for rule in self.record_rules:
            message = self._check_one(rule, env, payload, now_ms)
            if message is not None:
                out.append(Violation(rule.name, rule.severity, message))
        return out

    def _check_one(self, rule, env: Envelope, payload: dict, now_ms: int) -> str | None:
        if isinstance(rule, Freshness):
            ts = env.time if rule.field is None else payload.get(rule.field)
            if not isinstance(ts, int) or isinstance(ts, bool):
                return f"{rule.field} must be an int timestamp in ms, got {_describe(ts)}"
            age = now_ms - ts
            return None if age <= rule.max_age_ms else f"record is {age} ms old (max {rule.max_age_ms})"
        value = payload.get(rule.field)
        if isinstance(rule, NotNull):
            return None if value is not None else f"{rule.field} is null or missing"
        if value is None:
            return None
        if isinstance(rule, Between):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"{rule.field} must be a number, got {_describe(value)}"
            if rule.min is not None and value < rule.min:
                return f"{rule.field}={_describe(value)} is below the minimum {rule.min}"
            if rule.max is not None and value > rule.max:
                return f"{rule.field}={_describe(value)} is above the maximum {rule.max}"
            return None
        if isinstance(rule, InSet):
            allowed = self._sets[id(rule)]
            try:
                ok = value in allowed if allowed is not None else value in rule.values
            except TypeError:  # unhashable value
                ok = value in rule.values
            return None if ok else f"{rule.field}={_describe(value)} is not one of {_describe(rule.values)}"
        if isinstance(rule, Regex):
            if not isinstance(value, str):
                return f"{rule.field} must be a string, got {_describe(value)}"
            ok = self._patterns[id(rule)].search(value) is not None
            return None if ok else f"{rule.field}={_describe(value)} does not match /{rule.pattern}/"
        if isinstance(rule, Unique):
            seen = self._seen[id(rule)]
            try:
                key = value if not isinstance(value, (list, dict)) else msgspec.json.encode(value)
                hash(key)
            except TypeError:
                key = repr(value)
            owner = seen.get(key)
            if owner is not None and owner != env.id:
                seen.move_to_end(key)
                return f"{rule.field}={_describe(value)} was already seen in envelope {owner!r}"
            seen[key] = env.id
            seen.move_to_end(key)
            while len(seen) > rule.window:
                seen.popitem(last=False)
            return None
        raise ServiceError(f"unknown rule {rule!r}")  # pragma: no cover - the union is closed

    def check_batch(self, size: int) -> list[Violation]:
        out = []
        for rule in self.batch_rules:
            if rule.min is not None and size < rule.min:
                out.append(Violation(rule.name, rule.severity, f"batch has {size} records (min {rule.min})"))
            elif rule.max is not None and size > rule.max:
                out.append(Violation(rule.name, rule.severity, f"batch has {size} records (max {rule.max})"))
        return out
