"""Slow, obviously-correct pure-Python twin of every compiled kernel in `engine/_core.pyx`.

Same API, same errors (via `engine._checks`), same snapshots as `_core.pyi` describes. It exists for
the differential tests and for ``ENGINE_NO_EXTENSIONS=1``; the runtime reaches it only through
`engine.kernels`. Clarity beats speed here: plain loops and dicts, one record at a time.
"""

from __future__ import annotations

import numpy as np

from engine import _checks
from engine._kernel_types import (
    INT64_MAX,
    INT64_MIN,
    LEFT,
    RIGHT,
    FiredSessions,
    FiredWindows,
    JoinPairs,
)

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "LEFT",
    "RIGHT",
    "FiredSessions",
    "FiredWindows",
    "IntervalJoinBuffers",
    "JoinPairs",
    "KeyInterner",
    "SessionTable",
    "WatermarkTracker",
    "WindowAggTable",
    "combine_watermarks",
    "dfa_reject_lines",
    "late_mask",
    "sliding_windows",
    "tumbling_starts",
]


# ==== window assignment ==============================================================================


def tumbling_starts(ts, size, offset=0):
    raise NotImplementedError("tumbling_starts")


def sliding_windows(ts, size, slide, offset=0):
    raise NotImplementedError("sliding_windows")


# ==== end of window assignment =======================================================================


# ==== watermarks =====================================================================================


class WatermarkTracker:
    pass


def late_mask(watermarks, window_ends, lateness):
    raise NotImplementedError("late_mask")


def combine_watermarks(watermarks, idle):
    raise NotImplementedError("combine_watermarks")


# ==== end of watermarks ==============================================================================


# ==== key interning ==================================================================================


class KeyInterner:
    pass


# ==== end of key interning ===========================================================================


# ==== windowed aggregation ===========================================================================


class WindowAggTable:
    pass


# ==== end of windowed aggregation ====================================================================


# ==== session windows ================================================================================


class SessionTable:
    pass


# ==== end of session windows =========================================================================


# ==== interval join ==================================================================================


class IntervalJoinBuffers:
    pass


# ==== end of interval join ===========================================================================


# ==== pattern checks over a column ===================================================================


def dfa_reject_lines(buf, table, accepting, start):
    buf, table, accepting, start = _checks.dfa_arguments(buf, table, accepting, start)
    rejected = []
    state = start
    line = 0
    for byte in buf.tolist():
        if byte == 10:
            if not accepting[state]:
                rejected.append(line)
            line += 1
            state = start
        else:
            state = int(table[state * 256 + byte])
    if not accepting[state]:
        rejected.append(line)
    return np.asarray(rejected, dtype=np.int64)
