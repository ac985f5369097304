"""Window assignment, key interning and watermark tracking over one workload of 1M records.

The workload: 1,000,000 records, 1,000 keys, timestamps uniform in ``[0, 1_000_000)`` ms (seeded),
1 s tumbling windows (3 s sliding by 1 s), a 5 s out-of-orderness bound. Key interning is also measured
on 1,000,000 distinct keys (every key new: a first batch, a restore from a checkpoint). Each group computes one result the engine way
(compiled kernel), the plain numpy way and the pure-Python twin way.
"""

from __future__ import annotations

import functools

import numpy as np

from benchmarks._harness import Case, pytest_cases, run_case_with_benchmark
from engine import _core, _reference

N_RECORDS = 1_000_000
N_KEYS = 1_000
SIZE = 1_000
DELAY = 5_000
SEED = 20261126
INT64_MIN = -(2**63)


@functools.lru_cache(maxsize=1)
def workload() -> tuple[np.ndarray, np.ndarray]:
    """``(ts, keys)``: read-only int64 columns shared by every case (no case mutates them)."""
    rng = np.random.default_rng(SEED)
    ts = rng.integers(0, 1_000_000, size=N_RECORDS, dtype=np.int64)
    keys = rng.integers(0, N_KEYS, size=N_RECORDS, dtype=np.int64) * 7_919 + 1_000_003  # not 0..999
    ts.flags.writeable = False
    keys.flags.writeable = False
    return ts, keys


def timestamps():
    return workload()[0]


def keys():
    return workload()[1]


@functools.lru_cache(maxsize=1)
def distinct_keys() -> np.ndarray:
    """1,000,000 distinct int64 keys in random order (read-only), e.g. order ids seen once each."""
    rng = np.random.default_rng(SEED)
    column = rng.permutation(N_RECORDS).astype(np.int64) * 7_919 + 1_000_003
    column.flags.writeable = False
    return column


# --- tumbling assignment --------------------------------------------------------------------------------


def check_same_array(engine_result, other):
    np.testing.assert_array_equal(engine_result, other)


TUMBLING = "tumbling assignment, 1M"
tumbling_cases = [
    Case(TUMBLING, "engine", timestamps, lambda ts: _core.tumbling_starts(ts, SIZE)),
    Case(TUMBLING, "numpy ts//size*size", timestamps, lambda ts: ts // SIZE * SIZE,
         target="within 1.5x (ratio >= 0.67)", check=check_same_array),
    Case(TUMBLING, "python twin", timestamps, lambda ts: _reference.tumbling_starts(ts, SIZE),
         repeat=1, check=check_same_array),
]


SLIDE_SIZE, SLIDE = 3_000, 1_000


def numpy_sliding(ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sliding expansion with numpy when size is a multiple of slide (every record has k windows)."""
    k = SLIDE_SIZE // SLIDE
    last = ts // SLIDE * SLIDE
    starts = (last[:, None] - np.arange(k - 1, -1, -1, dtype=np.int64) * SLIDE).ravel()
    rows = np.repeat(np.arange(len(ts), dtype=np.int64), k)
    return rows, starts


def check_same_pairs(engine_result, other):
    for mine, theirs in zip(engine_result, other, strict=True):
        np.testing.assert_array_equal(mine, theirs)


SLIDING = "sliding assignment, 1M, 3 s / 1 s"
sliding_cases = [
    Case(SLIDING, "engine", timestamps, lambda ts: _core.sliding_windows(ts, SLIDE_SIZE, SLIDE)),
    Case(SLIDING, "numpy repeat+broadcast", timestamps, numpy_sliding, target=">= 1x", check=check_same_pairs),
]


# --- key interning ------------------------------------------------------------------------------------


def check_same_grouping(engine_ids, other):
    """Both results group the records identically (ids may be numbered differently)."""
    other_ids = other[1] if isinstance(other, tuple) else other
    n_groups = len(np.unique(other_ids))
    assert len(np.unique(engine_ids)) == n_groups
    assert len(np.unique(engine_ids * n_groups + other_ids)) == n_groups


def warmed_interner():
    interner = _core.KeyInterner()
    interner.intern(keys())
    return interner, keys()


INTERN = "key interning, 1M int64 keys"
INTERN_WARM = "key interning, 1M int64 keys, known"
intern_cases = [
    Case(INTERN, "engine", keys, lambda k: _core.KeyInterner().intern(k)),
    Case(INTERN, "numpy unique+inverse", keys, lambda k: np.unique(k, return_inverse=True),
         target=">= 1x", check=check_same_grouping),
    Case(INTERN, "python twin", keys, lambda k: _reference.KeyInterner().intern(k),
         repeat=1, check=check_same_grouping),
    # the steady state of a stream: every key of the batch was seen in an earlier batch
    Case(INTERN_WARM, "engine", warmed_interner, lambda state: state[0].intern(state[1])),
    Case(INTERN_WARM, "numpy unique+inverse", keys, lambda k: np.unique(k, return_inverse=True),
         target=">= 1x", check=check_same_grouping),
]


def python_dict_ids(column: np.ndarray) -> np.ndarray:
    """What a plain-Python interner does at best: one dict, first-seen ids."""
    ids: dict[int, int] = {}
    return np.fromiter((ids.setdefault(k, len(ids)) for k in column.tolist()), dtype=np.int64, count=len(column))


def interner_snapshot() -> dict:
    return {"keys": distinct_keys()}


INTERN_NEW = "key interning, 1M new int64 keys"
INTERN_RESTORE = "KeyInterner.restore, 1M int64 keys from an array"
intern_new_cases = [
    Case(INTERN_NEW, "engine", distinct_keys, lambda k: _core.KeyInterner().intern(k)),
    Case(INTERN_NEW, "numpy unique+inverse", distinct_keys, lambda k: np.unique(k, return_inverse=True),
         target=">= 1x", check=check_same_grouping),
    Case(INTERN_NEW, "python dict", distinct_keys, python_dict_ids, check=check_same_array),
    Case(INTERN_NEW, "python twin", distinct_keys, lambda k: _reference.KeyInterner().intern(k),
         repeat=1, check=check_same_array),
    Case(INTERN_RESTORE, "engine", interner_snapshot, lambda snap: len(_core.KeyInterner.restore(snap))),
    Case(INTERN_RESTORE, "python twin", interner_snapshot, lambda snap: len(_reference.KeyInterner.restore(snap)),
         repeat=1, check=check_same_array),
]


# --- watermark running max ------------------------------------------------------------------------------


def numpy_watermarks(ts: np.ndarray, prior_max: int, delay: int) -> np.ndarray:
    """The per-record rule with numpy: an exclusive running max, then a saturating subtraction."""
    before = np.empty_like(ts)
    before[:1] = prior_max
    np.maximum.accumulate(ts[:-1], out=before[1:])
    np.maximum(before, prior_max, out=before)
    floor = INT64_MIN + delay + 1
    out = before - (delay + 1)
    out[before < floor] = INT64_MIN
    return out


WATERMARK = "watermark running max, 1M"
watermark_cases = [
    Case(WATERMARK, "engine", timestamps, lambda ts: _core.WatermarkTracker(DELAY).advance(ts)),
    Case(WATERMARK, "numpy maximum.accumulate", timestamps,
         lambda ts: numpy_watermarks(ts, INT64_MIN, DELAY), target=">= 1x", check=check_same_array),
]


CASES = tumbling_cases + sliding_cases + intern_cases + intern_new_cases + watermark_cases


@pytest_cases(CASES)
def test_windows(benchmark, case):
    run_case_with_benchmark(benchmark, case)
