"""The one place that chooses the kernel implementation.

The runtime imports kernel names from here, never from `engine._core` or `engine._reference` directly.
``ENGINE_NO_EXTENSIONS=1`` (or true/yes/on) selects the pure-Python twin; otherwise the compiled
module is required, and a missing build is an ImportError, never a silent fallback to slow code.
"""

from __future__ import annotations

import os


def _flag(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name}={os.environ[name]!r} is not a boolean; use 1 or 0")


USING_EXTENSIONS = not _flag("ENGINE_NO_EXTENSIONS")

if USING_EXTENSIONS:
    from engine import _core as _impl
else:
    from engine import _reference as _impl  # type: ignore[no-redef]

INT64_MIN = _impl.INT64_MIN
INT64_MAX = _impl.INT64_MAX
LEFT = _impl.LEFT
RIGHT = _impl.RIGHT
FLAT_KINDS = _impl.FLAT_KINDS
FLAT_OK = _impl.FLAT_OK
FLAT_SECOND_TYPE = _impl.FLAT_SECOND_TYPE
FLAT_SLOW = _impl.FLAT_SLOW
FlatField = _impl.FlatField

tumbling_starts = _impl.tumbling_starts
sliding_windows = _impl.sliding_windows
late_mask = _impl.late_mask
combine_watermarks = _impl.combine_watermarks
dfa_reject_lines = _impl.dfa_reject_lines
scan_flat_json = _impl.scan_flat_json
json_object_rows = _impl.json_object_rows
kafka_record_batches = _impl.kafka_record_batches
kafka_json_record_batches = _impl.kafka_json_record_batches
kafka_key_partitions = _impl.kafka_key_partitions
gather_attributes = _impl.gather_attributes
crc32c = _impl.crc32c

WatermarkTracker = _impl.WatermarkTracker
KeyInterner = _impl.KeyInterner
FiredWindows = _impl.FiredWindows
WindowAggTable = _impl.WindowAggTable
FiredSessions = _impl.FiredSessions
SessionTable = _impl.SessionTable
JoinPairs = _impl.JoinPairs
IntervalJoinBuffers = _impl.IntervalJoinBuffers

IMPLEMENTATION = _impl.__name__


__all__ = [
    "FLAT_KINDS",
    "FLAT_OK",
    "FLAT_SECOND_TYPE",
    "FLAT_SLOW",
    "FlatField",
    "FiredSessions",
    "FiredWindows",
    "IMPLEMENTATION",
    "INT64_MAX",
    "INT64_MIN",
    "IntervalJoinBuffers",
    "JoinPairs",
    "KeyInterner",
    "LEFT",
    "RIGHT",
    "SessionTable",
    "USING_EXTENSIONS",
    "WatermarkTracker",
    "WindowAggTable",
    "combine_watermarks",
    "crc32c",
    "dfa_reject_lines",
    "gather_attributes",
    "json_object_rows",
    "kafka_json_record_batches",
    "kafka_key_partitions",
    "kafka_record_batches",
    "late_mask",
    "scan_flat_json",
    "sliding_windows",
    "tumbling_starts",
]
