"""The shared shape of a benchmark: a workload defined once, measured against baselines in one run.

A ``bench_<area>.py`` module defines ``CASES``: a list of `Case`. Cases of one ``group`` compute the
same result in different ways; the one with ``baseline=False`` named ``"engine"`` is ours, the others
are the baselines we compare against in the same process and the same run. pytest-benchmark drives each
case through `pytest_cases`; ``python -m benchmarks`` drives them through `measure` and prints ratios.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Case:
    group: str  # what is computed, e.g. "tumbling assignment, 1M records"
    name: str  # "engine", "numpy", "python twin", ...
    setup: Callable[[], Any]  # builds the input (not timed); its result is passed to run
    run: Callable[[Any], Any]  # the timed work
    target: str = ""  # the target for engine vs this baseline, e.g. ">= 2x"
    repeat: int = 5  # timed repetitions in `measure` (the best one counts)
    check: Callable[[Any, Any], None] | None = field(default=None, compare=False)  # (engine, this) results


def measure(case: Case, repeat: int | None = None) -> tuple[float, Any]:
    """Best wall time of ``repeat`` runs (fresh input each time) and the last result."""
    best = float("inf")
    result = None
    for _ in range(repeat or case.repeat):
        data = case.setup()
        gc.collect()
        started = time.perf_counter()
        result = case.run(data)
        best = min(best, time.perf_counter() - started)
    return best, result


def pytest_cases(cases: list[Case]):
    """Parametrize a pytest-benchmark test over ``cases`` (ids are ``group/name``)."""
    import pytest

    return pytest.mark.parametrize("case", cases, ids=[f"{c.group}/{c.name}" for c in cases])


def run_case_with_benchmark(benchmark, case: Case) -> Any:
    benchmark.group = case.group
    return benchmark.pedantic(case.run, setup=lambda: ((case.setup(),), {}), rounds=case.repeat, iterations=1)
