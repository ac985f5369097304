"""The record type of dead-letter streams."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["DeadLetter"]


class DeadLetter(msgspec.Struct, frozen=True):
    """A record a step could not process, routed to ``stream.dead_letters()`` (or ``flow.dead_letters()``).

    ``step`` names the step, ``error`` says what went wrong, ``record`` is the original input (for an
    undecodable line of a file: the line itself), ``field`` the field involved (``None`` for errors
    raised by user functions) and ``value`` the offending value.
    """

    step: str
    error: str
    record: Any
    field: str | None = None
    value: Any = None
