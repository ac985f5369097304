"""What every operator shares: the `Output` of processing one batch and watermark bookkeeping.

An operator is synchronous and runs on whole batches: ``process(batch, input_index) -> Output``. It
never awaits, never touches connectors, and reports bad records as `engine.dead_letters.DeadLetter`
values in ``Output.errors`` (the executor routes them or fails the job). Stateful operators expose
``snapshot()``/``restore()`` of their kernel state: the seam for checkpoints at batch boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine import kernels
from engine.batch import Batch
from engine.dead_letters import DeadLetter
from engine.runtime.extract import Problem

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

__all__ = ["InputWatermarks", "Operator", "Output", "dead_letters_for"]


@dataclass
class Output:
    """The result of processing one batch: the main output (always a batch, possibly empty, so the
    watermark moves on), the late side output (windows) and records that could not be processed."""

    main: Batch
    late: Batch | None = None
    errors: list[DeadLetter] = field(default_factory=list)
    late_count: int = 0


class Operator:
    """Base class; see the module docstring."""

    #: the operator's current output watermark
    watermark: int = INT64_MIN

    def __init__(self, step: str) -> None:
        self.step = step

    def process(self, batch: Batch, input_index: int) -> Output:
        raise NotImplementedError

    def snapshot(self) -> dict[str, Any]:
        """Kernel and operator state as plain data (checkpoint seam); stateless operators have none.

        Checkpoints are written in a background thread while later batches run. Everything is encoded
        at the cut, writeable numpy arrays included (copied); arrays marked read-only with
        `engine.state.codec.frozen` are written from their own memory afterwards, so mark only arrays
        nobody changes in place later (fresh kernel snapshots, arrays the operator only ever replaces).
        Order inside the state is free when `restore` accepts any (the windowed aggregation skips its
        canonical sort here)."""
        return {}

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Continue from ``snapshot`` (as returned by `snapshot`)."""

    def state_size(self) -> int:
        """Live state entries (windows, buffered rows); 0 for stateless operators."""
        return 0

    def extra_metrics(self) -> dict[str, Any]:
        """Operator-specific counters added to the step's metrics."""
        return {}


def dead_letters_for(step: str, records: list, problems: list[Problem]) -> list[DeadLetter]:
    """One `DeadLetter` per problem, carrying the offending record."""
    return [DeadLetter(step, p.error, records[p.index], p.field, p.value) for p in problems]


class InputWatermarks:
    """Watermark bookkeeping of a multi-input operator (union, interval join).

    Per input edge: the current watermark and idleness; the operator's watermark (which fires and
    purges) is `kernels.combine_watermarks` over the edges, so it never runs ahead of a record still
    to arrive on any edge. Per origin (source step): its current watermark; under the per-record rule
    a record sees ``min(its own watermark, the current watermarks of the other active origins)``. Two
    inputs split from one source thus judge each record by that source's own per-record watermark,
    whatever the batch size.
    """

    def __init__(self, n_inputs: int, origins: list[str]) -> None:
        self.watermarks = np.full(n_inputs, INT64_MIN, dtype=np.int64)
        self.idle = np.zeros(n_inputs, dtype=bool)
        self.origin_watermarks = {origin: INT64_MIN for origin in origins}
        self.origin_idle = {origin: False for origin in origins}

    def update(self, index: int, batch: Batch) -> None:
        # Watermarks never go backwards, even if an input that was idle reappears behind the others.
        if batch.watermark > self.watermarks[index]:
            self.watermarks[index] = batch.watermark
        self.idle[index] = batch.idle
        origin = batch.origin
        if origin in self.origin_watermarks:
            if batch.watermark > self.origin_watermarks[origin]:
                self.origin_watermarks[origin] = batch.watermark
            self.origin_idle[origin] = batch.idle

    def combined(self) -> int:
        return int(kernels.combine_watermarks(self.watermarks, self.idle))

    def all_idle(self) -> bool:
        return bool(self.idle.all())

    def per_record(self, origin: str | None, wm: np.ndarray) -> np.ndarray:
        """The per-record watermarks of a batch from ``origin``, bounded by the other active origins."""
        others = INT64_MAX
        for other, watermark in self.origin_watermarks.items():
            if other != origin and not self.origin_idle[other] and watermark < others:
                others = watermark
        if others == INT64_MAX or not len(wm):
            return wm
        return np.minimum(wm, np.int64(others))
