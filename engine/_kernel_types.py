"""Result types and constants shared by the compiled kernels and their twin (one definition)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

LEFT = 0
RIGHT = 1


class FiredWindows(NamedTuple):
    """Windows emitted by `WindowAggTable.fire`, sorted by ``(end, start, key_id)``."""

    key_ids: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    counts: np.ndarray
    sums: np.ndarray
    mins: np.ndarray
    maxs: np.ndarray


class FiredSessions(NamedTuple):
    """Sessions emitted by `SessionTable.fire`, sorted by ``(end, start, key_id)``.

    ``merged_*`` name sessions emitted earlier that have since been merged into an emitted one.
    """

    key_ids: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    counts: np.ndarray
    sums: np.ndarray
    mins: np.ndarray
    maxs: np.ndarray
    merged_key_ids: np.ndarray
    merged_starts: np.ndarray
    merged_ends: np.ndarray


class JoinPairs(NamedTuple):
    """Matches from `IntervalJoinBuffers.process` and the late mask of the processed batch."""

    left_rows: np.ndarray
    right_rows: np.ndarray
    late: np.ndarray
