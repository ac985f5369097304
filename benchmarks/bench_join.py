"""Interval-join buffers (kernel 6) over one streaming workload: probe, buffer and purge.

The workload: 400,000 records, 200,000 per side, 1,000 keys, event time advancing 1 ms per record
(both sides share one clock) with up to 300 ms of disorder, ``lower=-5000, upper=5000``. Records are
processed in micro-batches of 1,000 that alternate sides, each record with the join watermark in force
before it (the min over both inputs of ``BoundedOutOfOrderness(250)``, per-record rule; a few records
are late), and every batch is followed by ``purge(W)`` with the join watermark after it. That is what
the runtime's interval-join operator does per batch. The engine case drives the compiled kernel, the
baseline the pure-Python twin with the same calls; the check compares every pair, late flag and purge.
"""

from __future__ import annotations

import functools

import numpy as np

from benchmarks._harness import Case, pytest_cases, run_case_with_benchmark
from engine import _core, _reference

N_PER_SIDE = 200_000
N_KEYS = 1_000
BATCH = 1_000
LOWER, UPPER = -5_000, 5_000
DISORDER = 300
DELAY = 250
SEED = 20261126
INT64_MIN = -(2**63)


@functools.lru_cache(maxsize=1)
def workload() -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]]:
    """``[(side, key_ids, ts, row_ids, wm_before, purge_watermark), ...]`` per micro-batch (read-only)."""
    rng = np.random.default_rng(SEED)
    n = 2 * N_PER_SIDE
    ts_all = np.arange(n, dtype=np.int64) - rng.integers(0, DISORDER, size=n, dtype=np.int64)
    keys_all = rng.integers(0, N_KEYS, size=n, dtype=np.int64)
    max_ts = [INT64_MIN, INT64_MIN]  # per input

    def watermark(m: int) -> int:
        return INT64_MIN if m == INT64_MIN else m - DELAY - 1

    batches = []
    for b, start in enumerate(range(0, n, BATCH)):
        side = b % 2
        ts = ts_all[start : start + BATCH]
        # the own side's max before each record (exclusive running max), the other side's is fixed
        own_before = np.concatenate(([max_ts[side]], np.maximum.accumulate(ts)[:-1]))
        own_before = np.maximum(own_before, max_ts[side])
        own_wm = np.where(own_before == INT64_MIN, INT64_MIN, own_before - DELAY - 1)
        wm = np.minimum(own_wm, watermark(max_ts[1 - side])).astype(np.int64)
        max_ts[side] = max(max_ts[side], int(ts.max()))
        purge_at = min(watermark(max_ts[0]), watermark(max_ts[1]))
        cols = [keys_all[start : start + BATCH].copy(), ts.copy(), np.arange(start, start + len(ts)), wm]
        for col in cols:
            col.flags.writeable = False
        batches.append((side, *cols, purge_at))
    return batches


def run(data):
    """Process every batch, purging after each; returns every output for the check."""
    impl, batches = data
    buffers = impl.IntervalJoinBuffers(LOWER, UPPER)
    results = []
    purged = []
    for side, keys, ts, rows, wm, purge_at in batches:
        results.append(buffers.process(side, keys, ts, rows, wm))
        purged.append(buffers.purge(purge_at))
    return results, purged, len(buffers)


def check_same_output(engine, other):
    (e_results, e_purged, e_len), (o_results, o_purged, o_len) = engine, other
    assert e_len == o_len
    for e, o in zip(e_results, o_results, strict=True):
        np.testing.assert_array_equal(e.left_rows, o.left_rows)
        np.testing.assert_array_equal(e.right_rows, o.right_rows)
        np.testing.assert_array_equal(e.late, o.late)
    for (el, er), (ol, orr) in zip(e_purged, o_purged, strict=True):
        np.testing.assert_array_equal(el, ol)
        np.testing.assert_array_equal(er, orr)


PROBE = "interval-join probe"
CASES = [
    Case(PROBE, "engine", lambda: (_core, workload()), run),
    Case(PROBE, "python twin", lambda: (_reference, workload()), run, target=">= 20x", repeat=1,
         check=check_same_output),
]


@pytest_cases(CASES)
def test_join(benchmark, case):
    run_case_with_benchmark(benchmark, case)
