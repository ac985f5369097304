"""Window specifications (keyed windows), validated at construction.

All windows are half-open ``[start, end)``; see SEMANTICS.md, "Windows (keyed)". Sizes, slides, gaps
and offsets are int milliseconds or `datetime.timedelta`. An invalid spec raises `FlowDefinitionError`
(a ``ValueError``) when it is built, before any flow runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import FlowDefinitionError
from engine.time import duration_ms

__all__ = ["Session", "Sliding", "Tumbling", "WindowSpec"]


def _offset(offset: object, bound_name: str, bound: int) -> int:
    value = duration_ms("window offset", offset, allow_negative=True)
    if not -bound < value < bound:
        raise FlowDefinitionError(
            f"window offset must satisfy -{bound_name} < offset < {bound_name}, got offset={value} with "
            f"{bound_name}={bound}; use offset % {bound_name} instead"
        )
    return value


def _positive(name: str, value: object) -> int:
    value = duration_ms(name, value, allow_negative=True)
    if value <= 0:
        raise FlowDefinitionError(f"{name} must be > 0 milliseconds, got {value}")
    return value


@dataclass(frozen=True)
class Tumbling:
    """Fixed, non-overlapping windows: ``ts`` falls in ``[s, s + size)`` with
    ``s = offset + floor((ts - offset) / size) * size``."""

    size: int
    offset: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", _positive("Tumbling size", self.size))
        object.__setattr__(self, "offset", _offset(self.offset, "size", self.size))

    def __str__(self) -> str:
        return f"Tumbling({self.size}ms" + (f", offset={self.offset}ms)" if self.offset else ")")


@dataclass(frozen=True)
class Sliding:
    """Overlapping windows of ``size`` starting every ``slide``: ``ts`` belongs to every window whose start
    ``s`` satisfies ``s ≡ offset (mod slide)`` and ``ts - size < s <= ts``. ``size`` need not be a
    multiple of ``slide``; ``slide > size`` leaves gaps: a record in a gap is added to no window, so, like a
    late record, it goes to the late output (or is counted in ``late_records``), never silently lost."""

    size: int
    slide: int
    offset: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", _positive("Sliding size", self.size))
        object.__setattr__(self, "slide", _positive("Sliding slide", self.slide))
        object.__setattr__(self, "offset", _offset(self.offset, "slide", self.slide))

    def __str__(self) -> str:
        tail = f", offset={self.offset}ms" if self.offset else ""
        return f"Sliding({self.size}ms, slide={self.slide}ms{tail})"


@dataclass(frozen=True)
class Session:
    """Session windows: a record opens ``[ts, ts + gap)``; sessions of one key that overlap or touch
    merge into ``[min start, max end)``."""

    gap: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "gap", _positive("Session gap", self.gap))

    def __str__(self) -> str:
        return f"Session(gap={self.gap}ms)"


WindowSpec = (Tumbling, Sliding, Session)
