"""Session windows: `SessionTable` driven the way the runtime drives it, compiled kernel vs the twin.

Workload: 200,000 records over 1,000 keys, gap 30 s, allowed lateness 10 s, two value columns,
timestamps about 50 ms apart with up to 2 s of disorder, watermark ``BoundedOutOfOrderness(5 s)``
(per-record rule), batches of 10,000 with ``fire`` and ``purge`` after each, then end of input.
"""

from __future__ import annotations

import numpy as np

from benchmarks._harness import Case, pytest_cases, run_case_with_benchmark

N_RECORDS = 200_000
N_KEYS = 1_000
GAP = 30_000
LATENESS = 10_000
DELAY = 5_000
BATCH = 10_000
SEED = 20261126


def make_workload():
    rng = np.random.default_rng(SEED)
    ts = np.arange(N_RECORDS, dtype=np.int64) * 50 + rng.integers(0, 2_000, N_RECORDS)
    keys = rng.integers(0, N_KEYS, N_RECORDS).astype(np.int64)
    values = rng.normal(size=(N_RECORDS, 2))
    # the watermark in force before record i comes from records 0..i-1 only
    running = np.maximum.accumulate(ts)
    wm = np.empty(N_RECORDS, dtype=np.int64)
    wm[0] = np.iinfo(np.int64).min
    wm[1:] = running[:-1] - DELAY - 1
    batches = []
    for lo in range(0, N_RECORDS, BATCH):
        hi = min(lo + BATCH, N_RECORDS)
        after = int(running[hi - 1]) - DELAY - 1
        batches.append((keys[lo:hi], ts[lo:hi], values[lo:hi], wm[lo:hi], after))
    return batches


def run_with(module):
    def run(batches):
        table = module.SessionTable(GAP, LATENESS, 2)
        fired = late = total = 0
        for keys, ts, values, wm, after in batches:
            late += int(table.add(keys, ts, values, wm).sum())
            out = table.fire(after)
            fired += len(out.key_ids)
            total += int(out.counts.sum())
            table.purge(after)
        out = table.fire(module.INT64_MAX)
        fired += len(out.key_ids)
        total += int(out.counts.sum())
        table.purge(module.INT64_MAX)
        return fired, total, late

    return run


def same_result(engine_result, baseline_result):
    assert engine_result == baseline_result, (engine_result, baseline_result)


def _cases():
    from engine import _core, _reference

    group = "sessions 200k records, 1k keys, gap 30s"
    return [
        Case(group, "engine", make_workload, run_with(_core)),
        Case(group, "python twin", make_workload, run_with(_reference), repeat=1, check=same_result),
    ]


CASES = _cases()


@pytest_cases(CASES)
def test_sessions(benchmark, case):
    run_case_with_benchmark(benchmark, case)
