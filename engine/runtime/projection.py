"""Projection pushdown: which fields of a source's records the rest of a job can ever read.

When every consumer of a source reads its records only through field names, the whole record is never
needed: ``source -> key_by("user") -> window(...).aggregate(count=agg.count(), total=agg.sum("amount"))``
reads ``user`` and ``amount`` and nothing else (window results are new records). The runtime then tells
the source (`engine.io.Source.project`) which fields, and in what role, so a decoding source (Kafka's
JSON values) can decode just those into numpy columns instead of building one dict per message: less
decoding, and no per-record Python objects on the way to the kernels.

The promise is conservative. Any step that may see a record as a whole rules projection out for that
source: a callable (timestamp, key, map, filter, flat_map, aggregation or reduce), a sink, a join, a
union, a contract validation, or a window's late output (late records go out unchanged). Roles say
what a field's values must be for the columnar path to give exactly the records path's results:

* ``"int"``: an int in int64 range (the source's ``timestamp=`` field, or a field read in several roles);
* ``"key"``: an int or a str (the ``key_by`` field);
* ``"number"``: an int or a float (an aggregated field).

A source checks those per batch and decodes that batch as whole records when any value does not fit
(or a field is missing), so bad records still reach dead letters exactly as without projection.
"""

from __future__ import annotations

from typing import Any

from engine.runtime.plan import Plan

__all__ = ["ROLES", "source_projection"]

ROLES = ("int", "key", "number")


def source_projection(plan: Plan, source_step: str) -> dict[str, str] | None:
    """``{field: role}`` for the source step ``source_step`` when the job reads nothing of its records
    but those fields (see the module docstring), else ``None`` (records are needed whole)."""
    fields: dict[str, set[str]] = {}
    timestamp = plan.steps[source_step].params.get("timestamp")
    if timestamp is not None:
        if not isinstance(timestamp, str):
            return None
        fields.setdefault(timestamp, set()).add("int")
    consumers = plan.consumers.get(source_step, [])
    if not consumers:
        return None
    for key_by, _ in consumers:
        step = plan.steps[key_by]
        if step.kind != "key_by" or not isinstance(step.params.get("key"), str):
            return None
        fields.setdefault(step.params["key"], set()).add("key")
        windows = plan.consumers.get(key_by, [])
        if not windows:
            return None
        for window, _ in windows:
            numbers = _window_numbers(plan, window)
            if numbers is None:
                return None
            for name in numbers:
                fields.setdefault(name, set()).add("number")
    return {name: _narrowest(roles) for name, roles in fields.items()}


def _window_numbers(plan: Plan, window: str) -> list[str] | None:
    """The fields a window step reads (its aggregated fields), or None when it may see whole records."""
    step = plan.steps[window]
    if step.kind != "window" or step.params.get("reducer") is not None or window in plan.late_output:
        return None
    aggregations: dict[str, Any] | None = step.params.get("aggregations")
    if aggregations is None:
        return None
    numbers = []
    for aggregation in aggregations.values():
        if aggregation.field is None:
            continue
        if not isinstance(aggregation.field, str):
            return None
        numbers.append(aggregation.field)
    return numbers


def _narrowest(roles: set[str]) -> str:
    """One role for a field read in several: only an int satisfies every role."""
    if len(roles) == 1:
        return next(iter(roles))
    return "int"
