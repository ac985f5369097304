"""Data-quality rules checked over a batch of records (the contract's ``quality`` section).

`check_quality(contract, records)` evaluates every `QualityRule` and returns a `QualityReport`. A rule
fails when the share of failing records exceeds its ``allowed_failure_fraction``; its ``severity`` says
whether that failure is an ``error`` (``report.passed`` is false) or a ``warning`` (listed, not fatal).

Per-record rules (the failing share is ``failures / rows``): ``not_null`` (absent or null),
``between`` (``min <= v <= max``; a null or non-number fails), ``in_set``, ``regex`` (``re.search``,
strings only), ``unique`` (every occurrence after the first of a value fails). Batch rules (all or
nothing): ``freshness`` (the newest timestamp in ``field`` is at most ``max_age_ms`` old at ``now_ms``)
and ``row_count`` (``min <= rows <= max``). Fields may be dotted paths into nested objects. Records are
mappings or validated Structs.
"""

from __future__ import annotations

import datetime
import re
import time
from typing import Any, Iterable

import msgspec

from engine.contracts.model import DataContract, QualityRule

_MISSING = object()


class RuleResult(msgspec.Struct, frozen=True):
    rule: str  # the rule's label, e.g. "not_null(order_id)"
    severity: str
    passed: bool
    failures: int
    rows: int
    failure_fraction: float
    allowed_failure_fraction: float
    detail: str = ""


class QualityReport(msgspec.Struct, frozen=True):
    contract: str
    version: str
    rows: int
    results: tuple[RuleResult, ...]

    @property
    def passed(self) -> bool:
        """False when any ``error``-severity rule failed (warnings do not fail the report)."""
        return all(r.passed or r.severity != "error" for r in self.results)

    @property
    def failed(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    def __str__(self) -> str:
        lines = [f"quality of {self.contract} {self.version} over {self.rows} row(s): "
                 f"{'PASSED' if self.passed else 'FAILED'}"]
        for r in self.results:
            status = "ok" if r.passed else ("FAIL" if r.severity == "error" else "warn")
            lines.append(f"  [{status}] {r.rule}: {r.failures}/{r.rows} failing "
                         f"({r.failure_fraction:.2%}, allowed {r.allowed_failure_fraction:.2%}){' ' + r.detail if r.detail else ''}")
        return "\n".join(lines)


def _get(record: Any, path: str) -> Any:
    value = record
    for part in path.split("."):
        if value is None or value is _MISSING:
            return _MISSING
        if isinstance(value, dict):
            value = value.get(part, _MISSING)
        else:
            value = getattr(value, part, _MISSING)
        if value is msgspec.UNSET:
            return _MISSING
    return value


def _epoch_ms(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            return None
        return int(value.timestamp() * 1000)
    return None


def _count_failures(rule: QualityRule, values: list[Any]) -> tuple[int, str]:
    kind = rule.rule
    if kind == "not_null":
        return sum(1 for v in values if v is None or v is _MISSING), ""
    if kind == "between":
        lo, hi = rule.min, rule.max
        bad = 0
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                bad += 1
            elif (lo is not None and v < lo) or (hi is not None and v > hi):
                bad += 1
        return bad, ""
    if kind == "in_set":
        allowed = set(rule.values or ())
        return sum(1 for v in values if v not in allowed), ""
    if kind == "regex":
        search = re.compile(rule.pattern).search
        return sum(1 for v in values if not isinstance(v, str) or search(v) is None), ""
    if kind == "unique":
        seen: set = set()
        dupes = 0
        for v in values:
            if v is _MISSING or v is None:
                continue
            key = msgspec.json.encode(v) if isinstance(v, (list, dict, msgspec.Struct)) else v
            if key in seen:
                dupes += 1
            else:
                seen.add(key)
        return dupes, ""
    raise ValueError(f"not a per-record rule: {kind!r}")  # pragma: no cover - guarded by the caller


def check_quality(contract: DataContract, records: Iterable[Any], now_ms: int | None = None) -> QualityReport:
    """Evaluate ``contract.quality`` over ``records``; ``now_ms`` (default: wall clock) is for freshness."""
    rows = list(records)
    n = len(rows)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    results = []
    for rule in contract.quality:
        detail = ""
        if rule.rule == "row_count":
            ok = (rule.min is None or n >= rule.min) and (rule.max is None or n <= rule.max)
            failures, fraction = (0, 0.0) if ok else (1, 1.0)
            detail = f"rows={n}, expected [{rule.min}, {rule.max}]"
        elif rule.rule == "freshness":
            stamps = [t for t in (_epoch_ms(_get(r, rule.field)) for r in rows) if t is not None]
            newest = max(stamps) if stamps else None
            ok = newest is not None and now - newest <= rule.max_age_ms
            failures, fraction = (0, 0.0) if ok else (1, 1.0)
            age = "no timestamps" if newest is None else f"newest is {now - newest} ms old"
            detail = f"{age}, max age {rule.max_age_ms} ms"
        else:
            values = [_get(r, rule.field) for r in rows]
            failures, detail = _count_failures(rule, values)
            fraction = failures / n if n else 0.0
        passed = fraction <= rule.allowed_failure_fraction
        results.append(RuleResult(rule.label, rule.severity, passed, failures, n, fraction,
                                  rule.allowed_failure_fraction, detail))
    return QualityReport(contract.name, contract.version, n, tuple(results))
