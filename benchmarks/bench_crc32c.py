"""CRC-32C of 40 MB, the records a results-heavy Kafka job produces in about a second.

Two shapes of one workload (40,000,000 seeded random bytes): the whole buffer in one call, and the
sink's shape, 153 record batches of 256 KiB (its default batch limit; the last one shorter), each
summed through a memoryview slice as `connectors.kafka_framing` does. The engine's `crc32c` (the SSE4.2
``crc32`` instruction, three interleaved streams) against aiokafka's ``calc_crc32c`` (what the sink
used before: a table-driven Cython loop) and against the kernel's own portable slice-by-8 path (what
CPUs without SSE4.2 and other architectures run). ``report`` prints the median ratios of alternated
runs as well (the table's ratios are best against best).
"""

from __future__ import annotations

import functools
import statistics
import time

import numpy as np
from aiokafka.record.util import calc_crc32c

from benchmarks._harness import Case, pytest_cases, run_case_with_benchmark
from engine import _core

N_BYTES = 40_000_000
BATCH = 256 * 1024
SEED = 20261126


@functools.lru_cache(maxsize=1)
def workload() -> bytes:
    return np.random.default_rng(SEED).integers(0, 256, N_BYTES, dtype=np.uint8).tobytes()


def batches() -> list[memoryview]:
    view = memoryview(workload())
    return [view[i:i + BATCH] for i in range(0, N_BYTES, BATCH)]


def engine_hardware(pieces: list) -> list[int]:
    _core._crc32c_use_hardware(True)
    return [_core.crc32c(piece) for piece in pieces]


def engine_software(pieces: list) -> list[int]:
    _core._crc32c_use_hardware(False)
    try:
        return [_core.crc32c(piece) for piece in pieces]
    finally:
        _core._crc32c_use_hardware(True)


def aiokafka(pieces: list) -> list[int]:
    return [calc_crc32c(piece) for piece in pieces]


def _same(engine_result, baseline_result) -> None:
    assert engine_result == baseline_result, "CRC-32C results differ"


SHAPES = {
    "CRC-32C, 40 MB in one buffer": lambda: [workload()],
    "CRC-32C, 40 MB as 256 KiB batch slices": batches,
}
RUNS = {"engine": engine_hardware, "engine slice-by-8": engine_software, "aiokafka calc_crc32c": aiokafka}

CASES = [
    Case(group, name, setup, run, repeat=9, check=_same)
    for group, setup in SHAPES.items()
    for name, run in RUNS.items()
]


def median_ratios(rounds: int = 9) -> dict[tuple[str, str], tuple[float, float]]:
    """Per shape and baseline: (median engine ms, median ratio baseline/engine) over alternated runs."""
    out = {}
    for group, setup in SHAPES.items():
        pieces = setup()
        times: dict[str, list[float]] = {name: [] for name in RUNS}
        for _ in range(rounds):
            for name, run in RUNS.items():
                started = time.perf_counter()
                run(pieces)
                times[name].append(time.perf_counter() - started)
        engine = times["engine"]
        for name in RUNS:
            if name != "engine":
                ratios = [b / e for b, e in zip(times[name], engine)]
                out[(group, name)] = (statistics.median(engine) * 1e3, statistics.median(times[name]) * 1e3,
                                      statistics.median(ratios))
    return out


def report() -> str:
    """Median times and ratios of alternated runs, after the (best-of) ratio table."""
    lines = []
    for (group, name), (engine_ms, base_ms, ratio) in median_ratios().items():
        lines.append(f"{group} / {name}: median engine {engine_ms:.1f} ms, {name} {base_ms:.1f} ms, "
                     f"median ratio {ratio:.2f}x")
    return "\n".join(lines)


@pytest_cases(CASES)
def test_crc32c(benchmark, case):
    run_case_with_benchmark(benchmark, case)
