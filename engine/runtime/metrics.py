"""Per-step counters of a run, readable while it runs (``flow.metrics()``)."""

from __future__ import annotations

from typing import Any

INT64_MIN = -(2**63)

__all__ = ["Metrics", "StepMetrics"]


class StepMetrics:
    """Counters of one step.

    ``records_in``/``records_out``: records received / emitted on the main output; ``late_records``:
    records a window added to no window, or a join dropped as late; ``watermark``: the step's current
    watermark; ``batches``: non-empty input batches; ``errors``: records routed to dead letters;
    ``state``: live state entries (windows, buffered join rows). Sources add ``queued_batches_max``,
    the most batches ever waiting in the bounded queue.
    """

    __slots__ = ("kind", "records_in", "records_out", "late_records", "watermark", "batches", "errors", "state", "extra")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.records_in = 0
        self.records_out = 0
        self.late_records = 0
        self.watermark = INT64_MIN
        self.batches = 0
        self.errors = 0
        self.state = 0
        self.extra: dict[str, Any] = {}

    def as_dict(self) -> dict[str, Any]:
        out = {
            "kind": self.kind,
            "records_in": self.records_in,
            "records_out": self.records_out,
            "late_records": self.late_records,
            "watermark": self.watermark,
            "batches": self.batches,
            "errors": self.errors,
            "state": self.state,
        }
        out.update(self.extra)
        return out


class Metrics:
    """The counters of every step of one run, by step name."""

    def __init__(self, steps: dict[str, str]) -> None:
        self.steps = {name: StepMetrics(kind) for name, kind in steps.items()}
        self.seconds = 0.0

    def __getitem__(self, step: str) -> StepMetrics:
        return self.steps[step]

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {name: m.as_dict() for name, m in self.steps.items()}

    @property
    def records_in(self) -> int:
        """Records read by all sources (including ones that became dead letters)."""
        return sum(m.records_in for m in self.steps.values() if m.kind == "source")

    @property
    def records_out(self) -> int:
        """Records written by all sinks."""
        return sum(m.records_in for m in self.steps.values() if m.kind == "sink")
