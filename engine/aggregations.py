"""Built-in window aggregations: the ``agg`` namespace.

``window(...).aggregate(count=agg.count(), total=agg.sum("amount"), ...)`` names each result entry.
``sum``/``min``/``max``/``mean`` take a field name (read once per batch as a numeric column, the fast
path) or a callable ``record -> number`` (called once per record, outside the kernels). All of them run
in the compiled window tables. Semantics of the results:

* ``count``: number of records in the window (int).
* ``sum``: float; reported as an int when every value of the field was an integer and the sum is exact
  (``|sum| < 2**53``). NaN propagates.
* ``min``/``max``: NaN values are ignored (all-NaN gives NaN); reported as ints for integer fields.
* ``mean``: ``sum / count`` (float).

A value that is not a number (``None``, a string, a bool) is bad input: the record goes to the dead
letters of the window step, or the job fails naming the step, the field and the value.
For arbitrary Python values use ``window(...).reduce(fn, initial)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Union

from engine.errors import FlowDefinitionError

__all__ = ["Aggregation", "agg"]

FieldRef = Union[str, Callable[[Any], Any]]

KINDS = ("count", "sum", "min", "max", "mean")


@dataclass(frozen=True)
class Aggregation:
    """One aggregation over a window: ``kind`` is one of count/sum/min/max/mean, ``field`` a field name,
    a callable, or ``None`` for ``count``."""

    kind: str
    field: FieldRef | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FlowDefinitionError(f"unknown aggregation {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.kind == "count":
            if self.field is not None:
                raise FlowDefinitionError("agg.count() takes no field")
        elif not (isinstance(self.field, str) and self.field) and not callable(self.field):
            raise FlowDefinitionError(
                f"agg.{self.kind}() needs a field name or a callable record -> number, got {self.field!r}"
            )

    def __str__(self) -> str:
        if self.field is None:
            return f"{self.kind}()"
        ref = repr(self.field) if isinstance(self.field, str) else getattr(self.field, "__name__", "callable")
        return f"{self.kind}({ref})"


class _AggNamespace:
    """Factories for the built-in aggregations (``from engine import agg``)."""

    @staticmethod
    def count() -> Aggregation:
        """Number of records in the window."""
        return Aggregation("count")

    @staticmethod
    def sum(field: FieldRef) -> Aggregation:
        """Sum of ``field`` over the window."""
        return Aggregation("sum", field)

    @staticmethod
    def min(field: FieldRef) -> Aggregation:
        """Smallest value of ``field`` (NaN ignored)."""
        return Aggregation("min", field)

    @staticmethod
    def max(field: FieldRef) -> Aggregation:
        """Largest value of ``field`` (NaN ignored)."""
        return Aggregation("max", field)

    @staticmethod
    def mean(field: FieldRef) -> Aggregation:
        """``sum / count`` of ``field``."""
        return Aggregation("mean", field)


agg = _AggNamespace()
