"""Event time and watermark specifications.

Event time is an ``int`` number of milliseconds since the Unix epoch. Every duration parameter of the
public API accepts an ``int`` (milliseconds) or a `datetime.timedelta`; floats are refused so seconds
and milliseconds can never be mixed up silently. See SEMANTICS.md, "Time" and "Watermarks".
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from engine.errors import FlowDefinitionError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

__all__ = ["BoundedOutOfOrderness", "duration_ms"]


def duration_ms(name: str, value: object, *, minimum: int | None = None, allow_negative: bool = False) -> int:
    """Return the duration ``value`` (int milliseconds or `timedelta`) as an int of milliseconds.

    Raises `FlowDefinitionError` naming ``name`` for floats, bools, other types, values outside int64,
    negative values (unless ``allow_negative``) and values below ``minimum``.
    """
    if isinstance(value, datetime.timedelta):
        value = value // datetime.timedelta(milliseconds=1)
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            import numpy as np

            if isinstance(value, np.integer):
                value = int(value)
        except ImportError:  # pragma: no cover - numpy is a dependency
            pass
    if isinstance(value, bool) or not isinstance(value, int):
        raise FlowDefinitionError(
            f"{name} must be an int number of milliseconds or a datetime.timedelta, got {value!r}"
        )
    if not INT64_MIN <= value <= INT64_MAX:
        raise FlowDefinitionError(f"{name}={value} does not fit in int64 milliseconds")
    if not allow_negative and value < 0:
        raise FlowDefinitionError(f"{name} must be >= 0 milliseconds, got {value}")
    if minimum is not None and value < minimum:
        raise FlowDefinitionError(f"{name} must be >= {minimum} milliseconds, got {value}")
    return value


@dataclass(frozen=True)
class BoundedOutOfOrderness:
    """Watermarks that trail the largest timestamp seen by ``delay`` milliseconds.

    Per input partition ``W = max_ts_seen - delay - 1`` (``INT64_MIN`` before any record); records up to
    ``delay`` ms older than the newest one are therefore on time. ``idle_timeout`` (wall clock, optional)
    lets a partition that produced nothing for that long stop holding back the minimum watermark of the
    operators it feeds, until it produces again (as Flink's ``withIdleness``).
    """

    delay: int
    idle_timeout: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "delay", duration_ms("BoundedOutOfOrderness delay", self.delay))
        if self.idle_timeout is not None:
            idle = duration_ms("BoundedOutOfOrderness idle_timeout", self.idle_timeout, minimum=1)
            object.__setattr__(self, "idle_timeout", idle)

    def __str__(self) -> str:
        idle = f", idle_timeout={self.idle_timeout}ms" if self.idle_timeout is not None else ""
        return f"BoundedOutOfOrderness({self.delay}ms{idle})"
