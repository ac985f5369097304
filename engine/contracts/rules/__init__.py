"""Reader/writer compatibility rules, one module per schema family, and the result type they share.

Each ``*_reader_problems(reader, writer)`` function answers one question: can a consumer using
``reader`` read data produced with ``writer``? It returns one `Incompatibility` per broken rule (empty:
yes). `engine.contracts.compatibility` turns these answers into the Confluent modes.
"""

from __future__ import annotations

import math

import msgspec


class Incompatibility(msgspec.Struct, frozen=True):
    """One broken rule: ``rule`` (Confluent's error type name), ``path`` (the field), ``message``,
    and ``version`` (the previous version it conflicts with, when known)."""

    rule: str
    path: str
    message: str
    version: int | None = None
    direction: str = ""  # "backward" (new reads old) or "forward" (old reads new)

    def __str__(self) -> str:
        against = f" (against version {self.version}, {self.direction})" if self.version is not None else ""
        where = self.path or "<root>"
        return f"{where}: {self.message} [{self.rule}]{against}"



def join_path(path: str, part: str) -> str:
    """``a`` + ``b`` -> ``a.b``; ``a`` + ``[]`` -> ``a[]``."""
    return f"{path}.{part}" if path and not part.startswith("[") else f"{path}{part}"


def divides(r: float, w: float) -> bool:
    """Whether every multiple of ``w`` is a multiple of ``r``."""
    q = w / r
    return math.isclose(q, round(q)) and round(q) != 0
