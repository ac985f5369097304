"""Interval-join buffers (kernel 6): compiled kernel vs pure-Python twin, hand-computed semantics,
an oracle against brute force, bounded memory, snapshots and bad input.

Semantics under test (SEMANTICS.md "Interval join", `_core.pyi`): left ``l`` and right ``r`` of one key
match when ``l.ts + lower <= r.ts <= l.ts + upper`` (each bound exclusive by flag); a record with
``ts <= wm_before`` is late and dropped; ``purge(W)`` drops left rows with ``W >= ts + upper`` and right
rows with ``W >= ts - lower`` (saturating).
"""

from __future__ import annotations

import datetime
import pickle
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import _core, _reference

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
LEFT, RIGHT = 0, 1
IMPLS = [_core, _reference]
IMPL_IDS = ["compiled", "twin"]


def a(*values):
    return np.array(values, dtype=np.int64)


def batch(records):
    """``[(key, ts, row, wm), ...]`` -> the four int64 columns `process` takes."""
    cols = list(zip(*records)) if records else [(), (), (), ()]
    return tuple(np.array(c, dtype=np.int64) for c in cols)


def pairs_of(result):
    return list(zip(result.left_rows.tolist(), result.right_rows.tolist()))


def assert_same_arrays(x, y):
    assert x.dtype == y.dtype == np.int64 or x.dtype == y.dtype == np.bool_
    assert x.tolist() == y.tolist()


def assert_same_snapshot(s1, s2):
    assert list(s1) == list(s2)
    for name in s1:
        v1, v2 = s1[name], s2[name]
        if isinstance(v1, np.ndarray):
            assert isinstance(v2, np.ndarray) and v1.dtype == v2.dtype == np.int64, name
            assert v1.tolist() == v2.tolist(), name
        else:
            assert type(v1) is type(v2) and v1 == v2, name


def run_ops(buffers, ops):
    """Apply ``("process", side, records)`` / ``("purge", W)`` ops; returns every output as lists."""
    out = []
    for op in ops:
        if op[0] == "process":
            result = buffers.process(op[1], *batch(op[2]))
            assert result.left_rows.dtype == result.right_rows.dtype == np.int64
            assert result.late.dtype == np.bool_ and len(result.late) == len(op[2])
            out.append(("process", pairs_of(result), result.late.tolist()))
        else:
            left, right = buffers.purge(op[1])
            assert left.dtype == right.dtype == np.int64
            out.append(("purge", left.tolist(), right.tolist()))
        out.append(("len", len(buffers)))
    return out


# --- strategies ----------------------------------------------------------------------------------

BASES = [0, -1_000_000, INT64_MIN, INT64_MAX - 60]
KEY_IDS = [0, INT64_MAX, INT64_MIN, -1]


@st.composite
def bounds(draw):
    """(lower, upper, lower_exclusive, upper_exclusive): mostly small, sometimes at the int64 limits."""
    kind = draw(st.sampled_from(["small", "small", "small", "extreme"]))
    if kind == "small":
        lower = draw(st.integers(-15, 15))
        upper = lower + draw(st.integers(0, 20))
    else:
        lower, upper = draw(
            st.sampled_from([(INT64_MIN, INT64_MAX), (INT64_MIN, 0), (0, INT64_MAX), (-(2**62), 2**62),
                             (INT64_MIN, INT64_MIN), (INT64_MAX, INT64_MAX), (-10, INT64_MAX)])
        )
    return lower, upper, draw(st.booleans()), draw(st.booleans())


@st.composite
def join_ops(draw, max_ops=12):
    """Interleaved left/right batches and purges over one timestamp region near ``base``."""
    n_keys = draw(st.sampled_from([1, 3, 50]))
    span = 60

    def clamp(x):
        return max(INT64_MIN, min(INT64_MAX, x))

    def near(base, low=0):
        return st.integers(low, span).map(lambda d: clamp(base + d))

    if draw(st.integers(0, 3)) == 0:  # timestamps from every region at once, to cross the int64 range
        ts_st = st.one_of([near(base) for base in BASES])
        wm_st = st.one_of(st.just(INT64_MIN), *[near(base, -5) for base in BASES])
    else:
        base = draw(st.sampled_from(BASES))
        ts_st = near(base)
        wm_st = st.one_of(st.just(INT64_MIN), near(base, -5))
    # key ids are caller-assigned int64s: not necessarily dense, small or non-negative
    key_st = st.integers(0, n_keys - 1).map(lambda k: KEY_IDS[k] if k < len(KEY_IDS) else k * 7_919 - 100_000)
    record = st.tuples(key_st, ts_st, st.integers(0, 10**6), wm_st)
    ops = []
    for _ in range(draw(st.integers(0, max_ops))):
        if draw(st.integers(0, 4)) == 0:
            ops.append(("purge", draw(st.one_of(st.sampled_from([INT64_MIN, INT64_MAX]), wm_st))))
        else:
            ops.append(("process", draw(st.sampled_from([LEFT, RIGHT])), draw(st.lists(record, max_size=12))))
    return ops


# --- differential tests --------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(bounds(), join_ops())
def test_compiled_equals_twin(bound, ops):
    compiled = _core.IntervalJoinBuffers(*bound)
    twin = _reference.IntervalJoinBuffers(*bound)
    assert run_ops(compiled, ops) == run_ops(twin, ops)
    assert_same_snapshot(compiled.snapshot(), twin.snapshot())


@pytest.mark.parametrize("seed", range(4))
def test_compiled_equals_twin_on_long_disordered_streams(seed):
    """Larger buffers than hypothesis builds: compaction, shrinking and purge-log merges get exercised."""
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    n_keys = [1, 5, 50, 500][seed]
    bound = (int(rng.integers(-300, 0)), int(rng.integers(0, 300)), bool(rng.integers(2)), bool(rng.integers(2)))
    ops, clock, row = [], 0, 0
    for b in range(60):
        size = int(rng.integers(0, 300))
        # bursts of reversed or shuffled timestamps next to in-order runs
        ts = clock + np.arange(size) - rng.integers(0, 400 if b % 3 else 5, size)
        if b % 7 == 0:
            ts = ts[::-1]
        wm = np.full(size, clock - 350)  # a few records are late
        clock += size
        keys = rng.integers(0, n_keys, size)
        records = list(zip(keys.tolist(), ts.tolist(), range(row, row + size), wm.tolist()))
        row += size
        ops.append(("process", b % 2 if b % 5 else 0, records))
        if b % 4 == 3:
            ops.append(("purge", clock - 700))
    ops.append(("purge", INT64_MAX))
    compiled = _core.IntervalJoinBuffers(*bound)
    twin = _reference.IntervalJoinBuffers(*bound)
    assert run_ops(compiled, ops[:-1]) == run_ops(twin, ops[:-1])
    assert_same_snapshot(compiled.snapshot(), twin.snapshot())
    assert run_ops(compiled, ops[-1:]) == run_ops(twin, ops[-1:])


# timestamp ranges for large batches: many keys per ts, narrow spans (one or two counting passes of the
# compiled purge log's sort), a span too wide for counting passes, and the whole int64 range
TS_RANGES = {
    "ties": (0, 40, 0, 5),  # (low ts, high ts, -lower, upper)
    "narrow": (-3_000, 3_000, 200, 300),
    "wide": (-(2**40), 2**40, 2**36, 2**37),
    "int64": (INT64_MIN, INT64_MAX, 2**61, 2**60),
}


@pytest.mark.parametrize("ts_range", TS_RANGES)
@pytest.mark.parametrize("seed", range(2))
def test_compiled_equals_twin_on_large_shuffled_batches(ts_range, seed):
    """Batches in any ts order, row ids not in arrival order (some repeated), purges that fall inside
    the buffered rows, and a snapshot/restore half-way: outputs, purge order and state match the twin."""
    print(f"seed={seed} ts_range={ts_range}")
    rng = np.random.default_rng(seed)
    low, high, minus_lower, upper = TS_RANGES[ts_range]
    bound = (-minus_lower, upper, bool(rng.integers(2)), bool(rng.integers(2)))
    n_keys = [3, 400][seed]
    ops, seen = [], []
    for b in range(12):
        size = int(rng.integers(200, 1_200))
        ts = rng.integers(low, high, size, endpoint=True, dtype=np.int64)
        if b % 3 == 1:
            ts = np.sort(ts)[::-1]  # a reversed batch
        elif b % 3 == 2:
            ts = np.sort(ts)
        seen.extend(ts.tolist())
        rows = rng.integers(0, 6_000, size)  # caller-assigned: any order, a few repeats
        keys = rng.integers(0, n_keys, size)
        wm = np.where(rng.random(size) < 0.05, low, INT64_MIN)  # a few late records
        ops.append(("process", int(rng.integers(2)), list(zip(keys.tolist(), ts.tolist(), rows.tolist(), wm.tolist()))))
        if b % 2:
            # a watermark among the buffered timestamps: part of the buffers (and of the rows not yet
            # merged into the compiled purge log) is due
            ops.append(("purge", int(np.quantile(np.array(seen, dtype=np.float64), b / 24))))
    ops.append(("purge", INT64_MAX))
    half = len(ops) // 2
    compiled = _core.IntervalJoinBuffers(*bound)
    twin = _reference.IntervalJoinBuffers(*bound)
    assert run_ops(compiled, ops[:half]) == run_ops(twin, ops[:half])
    assert_same_snapshot(compiled.snapshot(), twin.snapshot())
    compiled = _core.IntervalJoinBuffers.restore(compiled.snapshot())
    assert run_ops(compiled, ops[half:-1]) == run_ops(twin, ops[half:-1])
    assert_same_snapshot(compiled.snapshot(), twin.snapshot())
    assert run_ops(compiled, ops[-1:]) == run_ops(twin, ops[-1:])
    assert len(compiled) == 0


@settings(max_examples=100, deadline=None)
@given(bounds(), join_ops(), st.data())
def test_batch_boundaries_do_not_change_results(bound, ops, data):
    """Splitting a batch into consecutive smaller batches of the same side concatenates the outputs."""
    split_ops = []
    for op in ops:
        if op[0] == "process" and op[2]:
            cuts = sorted(data.draw(st.lists(st.integers(0, len(op[2])), max_size=3)))
            edges = [0, *cuts, len(op[2])]
            split_ops.append(("split", [("process", op[1], op[2][i:j]) for i, j in zip(edges, edges[1:])]))
        else:
            split_ops.append(op)
    for impl in IMPLS:
        whole = impl.IntervalJoinBuffers(*bound)
        parts = impl.IntervalJoinBuffers(*bound)
        for op, split in zip(ops, split_ops):
            if split[0] != "split":
                assert run_ops(whole, [op]) == run_ops(parts, [split])
                continue
            expected = run_ops(whole, [op])
            got = run_ops(parts, split[1])
            assert expected[0][1] == [p for out in got[0::2] for p in out[1]]
            assert expected[0][2] == [flag for out in got[0::2] for flag in out[2]]
            assert expected[1] == got[-1]


@settings(max_examples=100, deadline=None)
@given(bounds(), join_ops(), st.data())
def test_snapshot_restore_continue_equals_uninterrupted(bound, ops, data):
    cut = data.draw(st.integers(0, len(ops)))
    source_impl, target_impl = data.draw(st.sampled_from([(s, t) for s in IMPLS for t in IMPLS]))
    uninterrupted = run_ops(_reference.IntervalJoinBuffers(*bound), ops)
    first = source_impl.IntervalJoinBuffers(*bound)
    head = run_ops(first, ops[:cut])
    snap = first.snapshot()
    restored = target_impl.IntervalJoinBuffers.restore(snap)
    assert_same_snapshot(restored.snapshot(), snap)
    assert len(restored) == len(first)
    assert head + run_ops(restored, ops[cut:]) == uninterrupted


def test_snapshot_is_canonical_and_sorted():
    for impl in IMPLS:
        j = impl.IntervalJoinBuffers(-5, 5, lower_exclusive=True)
        # keys and timestamps inserted out of order: the snapshot sorts by (key_id, ts, row_id)
        j.process(LEFT, a(7, 3, 7, 3), a(20, 10, 10, 10), a(1, 9, 2, 4), a(0, 0, 0, 0))
        j.process(RIGHT, a(3), a(12), a(5), a(0))
        snap = j.snapshot()
        assert list(snap) == ["lower", "upper", "lower_exclusive", "upper_exclusive", "left_key_ids", "left_ts",
                              "left_row_ids", "right_key_ids", "right_ts", "right_row_ids"]
        assert (snap["lower"], snap["upper"], snap["lower_exclusive"], snap["upper_exclusive"]) == (-5, 5, True, False)
        assert snap["left_key_ids"].tolist() == [3, 3, 7, 7]
        assert snap["left_ts"].tolist() == [10, 10, 10, 20]
        assert snap["left_row_ids"].tolist() == [4, 9, 2, 1]
        assert snap["right_key_ids"].tolist() == [3] and snap["right_row_ids"].tolist() == [5]


@pytest.mark.parametrize("impl", IMPLS, ids=IMPL_IDS)
def test_pickle_round_trip_goes_through_the_snapshot(impl):
    j = impl.IntervalJoinBuffers(-5, 5)
    j.process(LEFT, a(1, 2), a(10, 11), a(0, 1), a(0, 0))
    clone = pickle.loads(pickle.dumps(j))
    assert type(clone) is type(j)
    assert_same_snapshot(clone.snapshot(), j.snapshot())
    assert pairs_of(clone.process(RIGHT, a(1), a(12), a(5), a(0))) == [(0, 5)]


# --- oracle: every matching pair of non-late records, exactly once ---------------------------------


def brute_force_pairs(left, right, lower, upper, lower_exclusive, upper_exclusive):
    pairs = set()
    for lk, lts, lrow in left:
        for rk, rts, rrow in right:
            above = lts + lower < rts if lower_exclusive else lts + lower <= rts
            below = rts < lts + upper if upper_exclusive else rts <= lts + upper
            if lk == rk and above and below:
                pairs.add((lrow, rrow))
    return pairs


@pytest.mark.parametrize("impl", IMPLS, ids=IMPL_IDS)
@pytest.mark.parametrize("seed", range(6))
def test_emitted_pairs_equal_brute_force_when_purging_by_the_join_watermark(impl, seed):
    rng = random.Random(seed)
    print(f"seed={seed}")
    lower = rng.randint(-30, 10)
    upper = lower + rng.randint(0, 40)
    lower_exclusive, upper_exclusive = rng.random() < 0.3, rng.random() < 0.3
    delay = rng.randint(0, 20)
    base = rng.choice([0, -10_000, INT64_MIN + 10, INT64_MAX - 3_000])
    n_keys = rng.choice([1, 4, 30])
    j = impl.IntervalJoinBuffers(lower, upper, lower_exclusive, upper_exclusive)
    max_ts = [None, None]  # per input, for BoundedOutOfOrderness(delay)
    next_ts = [base, base]
    accepted = ([], [])
    emitted = []
    row = 0

    def join_watermark():
        # the min over both inputs; an input that produced nothing holds it at INT64_MIN
        marks = [INT64_MIN if m is None else max(INT64_MIN, m - delay - 1) for m in max_ts]
        return min(marks)

    for _ in range(rng.randint(20, 60)):
        side = rng.randint(0, 1)
        records = []
        for _ in range(rng.randint(0, 15)):
            next_ts[side] += rng.randint(0, 6)
            ts = max(INT64_MIN, min(INT64_MAX, next_ts[side] - rng.randint(0, 25)))  # disorder, sometimes late
            wm = join_watermark()  # per-record rule: from the records before this one
            records.append((rng.randrange(n_keys), ts, row, wm))
            if ts > wm:
                accepted[side].append((records[-1][0], ts, row))
            max_ts[side] = ts if max_ts[side] is None else max(max_ts[side], ts)
            row += 1
        result = j.process(side, *batch(records))
        assert result.late.tolist() == [ts <= wm for _, ts, _, wm in records]
        emitted.extend(pairs_of(result))
        j.purge(join_watermark())  # never beyond the watermark of any later record
    assert len(emitted) == len(set(emitted)), "a pair was emitted twice"
    assert set(emitted) == brute_force_pairs(*accepted, lower, upper, lower_exclusive, upper_exclusive)
    assert len(j) <= len(accepted[0]) + len(accepted[1])
    left_gone, right_gone = j.purge(INT64_MAX)
    assert len(j) == 0
    assert set(left_gone.tolist()) <= {r for _, _, r in accepted[0]}
    assert set(right_gone.tolist()) <= {r for _, _, r in accepted[1]}


# --- hand-computed examples ----------------------------------------------------------------------


@pytest.fixture(params=IMPLS, ids=IMPL_IDS)
def impl(request):
    return request.param


def test_bounds_are_inclusive_by_default(impl):
    j = impl.IntervalJoinBuffers(-5, 5)
    j.process(LEFT, a(1), a(10), a(100), a(INT64_MIN))
    result = j.process(RIGHT, a(1, 1, 1, 1), a(4, 5, 15, 16), a(1, 2, 3, 4), a(0, 0, 0, 0))
    assert pairs_of(result) == [(100, 2), (100, 3)]
    assert result.late.tolist() == [False] * 4


@pytest.mark.parametrize(
    "lower_exclusive, upper_exclusive, expected",
    [(False, False, [2, 3]), (True, False, [3]), (False, True, [2]), (True, True, [])],
)
def test_exclusive_flags_drop_the_bound(impl, lower_exclusive, upper_exclusive, expected):
    # right ts 5 sits on the lower bound (10 - 5), 15 on the upper bound (10 + 5)
    j = impl.IntervalJoinBuffers(-5, 5, lower_exclusive, upper_exclusive)
    j.process(RIGHT, a(1, 1, 1, 1), a(4, 5, 15, 16), a(1, 2, 3, 4), a(0, 0, 0, 0))
    result = j.process(LEFT, a(1), a(10), a(100), a(0))
    assert [r for _, r in pairs_of(result)] == expected


def test_asymmetric_bounds_from_either_side(impl):
    # lower=0, upper=10: the right record must be at or up to 10 ms after the left one
    j = impl.IntervalJoinBuffers(0, 10)
    j.process(LEFT, a(1, 1), a(0, 20), a(1, 2), a(INT64_MIN, INT64_MIN))
    assert pairs_of(j.process(RIGHT, a(1, 1, 1), a(10, -1, 25), a(11, 12, 13), a(-5, -5, -5))) == [
        (1, 11),
        (2, 13),
    ]
    # a left record probes the right buffer (10, -1, 25): -1 is before 5, 10 is in [5, 15]
    assert pairs_of(j.process(LEFT, a(1), a(5), a(3), a(-5))) == [(3, 11)]


def test_pairs_in_probe_order_then_by_buffered_ts_and_row(impl):
    j = impl.IntervalJoinBuffers(-100, 100)
    j.process(RIGHT, a(1, 1, 1, 2), a(12, 8, 8, 9), a(7, 9, 3, 50), a(0, 0, 0, 0))
    result = j.process(LEFT, a(1, 2, 1), a(10, 10, 11), a(20, 21, 22), a(0, 0, 0))
    assert pairs_of(result) == [(20, 3), (20, 9), (20, 7), (21, 50), (22, 3), (22, 9), (22, 7)]


def test_records_join_only_within_their_key(impl):
    j = impl.IntervalJoinBuffers(-5, 5)
    j.process(LEFT, a(1, 2), a(10, 10), a(1, 2), a(0, 0))
    assert pairs_of(j.process(RIGHT, a(3, 2), a(10, 10), a(3, 4), a(0, 0))) == [(2, 4)]


def test_late_records_are_dropped_not_buffered(impl):
    j = impl.IntervalJoinBuffers(-5, 5)
    result = j.process(LEFT, a(1, 1, 1), a(10, 11, 12), a(1, 2, 3), a(10, 10, 10))
    assert result.late.tolist() == [True, False, False]  # ts <= W is late, ts == W + 1 is not
    assert len(j) == 2
    result = j.process(RIGHT, a(1, 1), a(10, 11), a(4, 5), a(10, 10))
    assert result.late.tolist() == [True, False]
    assert pairs_of(result) == [(2, 5), (3, 5)]


def test_a_record_at_int64_min_is_always_late(impl):
    # before any record the watermark is INT64_MIN, and ts <= W makes a record late
    j = impl.IntervalJoinBuffers(-5, 5)
    assert j.process(LEFT, a(1), a(INT64_MIN), a(1), a(INT64_MIN)).late.tolist() == [True]


def test_a_batch_joins_against_its_own_earlier_records_only_across_sides(impl):
    # a record is buffered after probing, so records of the same side never pair with each other
    j = impl.IntervalJoinBuffers(-5, 5)
    result = j.process(LEFT, a(1, 1), a(10, 10), a(1, 2), a(0, 0))
    assert pairs_of(result) == [] and len(j) == 2


def test_purge_drops_rows_that_can_no_longer_match(impl):
    j = impl.IntervalJoinBuffers(-3, 5)
    j.process(LEFT, a(1, 2, 1), a(10, 8, 12), a(1, 2, 3), a(0, 0, 0))
    j.process(RIGHT, a(1, 2, 1), a(9, 6, 20), a(11, 12, 13), a(0, 0, 0))
    # left purge time = ts + 5: 15, 13, 17; right purge time = ts + 3: 12, 9, 23
    left, right = j.purge(8)
    assert left.tolist() == [] and right.tolist() == []
    left, right = j.purge(13)
    assert left.tolist() == [2] and right.tolist() == [12, 11]  # sorted by (ts, row): 6 then 9
    left, right = j.purge(17)
    assert left.tolist() == [1, 3] and right.tolist() == []
    assert len(j) == 1
    # a purged left row no longer matches a right record that is not late at W = 17
    assert pairs_of(j.process(RIGHT, a(1), a(18), a(14), a(17))) == []


def test_purge_output_is_sorted_by_ts_then_row_across_keys(impl):
    j = impl.IntervalJoinBuffers(-1, 1)
    j.process(LEFT, a(5, 1, 3, 1, 2), a(7, 7, 3, 5, 7), a(40, 30, 10, 20, 5), a(0, 0, 0, 0, 0))
    left, _ = j.purge(100)
    assert left.tolist() == [10, 20, 5, 30, 40]
    assert len(j) == 0


def test_purge_output_is_sorted_by_ts_then_row_when_many_keys_share_a_ts(impl):
    seed = 7
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    n = 3_000
    keys = rng.integers(0, 1_000, n)
    ts = rng.integers(0, 5, n)  # five timestamps, each shared by hundreds of keys
    rows = rng.permutation(n) * 3  # caller-assigned row ids in no particular order
    j = impl.IntervalJoinBuffers(-2, 10)
    j.process(LEFT, keys, ts, rows, np.full(n, -1))
    j.process(RIGHT, keys, ts[::-1], rows[::-1] + 1, np.full(n, -1))
    left, right = j.purge(5)  # left rows are due at W >= ts + 10 (none), right rows at W >= ts + 2
    assert left.tolist() == []
    assert right.tolist() == [r + 1 for t, r in sorted(zip(ts.tolist(), rows.tolist())) if t + 2 <= 5]
    left, right = j.purge(12)
    assert left.tolist() == [r for t, r in sorted(zip(ts.tolist(), rows.tolist())) if t + 10 <= 12]
    assert right.tolist() == [r + 1 for t, r in sorted(zip(ts.tolist(), rows.tolist())) if 5 < t + 2]
    left, right = j.purge(INT64_MAX)
    assert left.tolist() == [r for t, r in sorted(zip(ts.tolist(), rows.tolist())) if t + 10 > 12]
    assert right.tolist() == [] and len(j) == 0


def test_match_bounds_beyond_int64_follow_exact_arithmetic(impl):
    # l.ts + upper exceeds INT64_MAX: every right ts >= l.ts + lower matches, exclusive or not
    for upper_exclusive in (False, True):
        j = impl.IntervalJoinBuffers(-5, 10, upper_exclusive=upper_exclusive)
        j.process(LEFT, a(1), a(INT64_MAX - 1), a(1), a(0))
        result = j.process(RIGHT, a(1, 1), a(INT64_MAX, INT64_MAX - 7), a(2, 3), a(0, 0))
        assert pairs_of(result) == [(1, 2)]
    # r.ts - upper below INT64_MIN: a left record at INT64_MIN + 1 matches a right one at INT64_MIN + 3
    j = impl.IntervalJoinBuffers(-5, 10)
    j.process(RIGHT, a(1), a(INT64_MIN + 3), a(7), a(INT64_MIN))
    assert pairs_of(j.process(LEFT, a(1), a(INT64_MIN + 1), a(8), a(INT64_MIN))) == [(8, 7)]
    # a buffered INT64_MIN (only reachable through a snapshot: process finds it late) is in range of
    # a right record whose exact lower bound r.ts - upper lies below INT64_MIN
    snap = impl.IntervalJoinBuffers(-10, 10).snapshot()
    snap.update(left_key_ids=a(1), left_ts=a(INT64_MIN), left_row_ids=a(9))
    j = impl.IntervalJoinBuffers.restore(snap)
    assert pairs_of(j.process(RIGHT, a(1), a(INT64_MIN + 3), a(10), a(INT64_MIN))) == [(9, 10)]


def test_purge_times_saturate(impl):
    j = impl.IntervalJoinBuffers(-10, 10)
    j.process(LEFT, a(1), a(INT64_MAX - 1), a(1), a(0))
    j.process(RIGHT, a(1), a(INT64_MAX - 2), a(2), a(0))
    # left: ts + 10 saturates to INT64_MAX; right: ts + 10 as well
    assert [x.tolist() for x in j.purge(INT64_MAX - 1)] == [[], []]
    assert [x.tolist() for x in j.purge(INT64_MAX)] == [[1], [2]]
    # right with a huge positive lower: ts - lower saturates to INT64_MIN, due at once
    j = impl.IntervalJoinBuffers(2**62, INT64_MAX)
    j.process(RIGHT, a(1), a(INT64_MIN + 5), a(3), a(INT64_MIN))
    assert [x.tolist() for x in j.purge(INT64_MIN)] == [[], [3]]


def test_widest_bounds_follow_exact_arithmetic(impl):
    # lower=INT64_MIN, upper=INT64_MAX: l=0 matches every right; l=1 misses r < INT64_MIN + 1, l=-1
    # misses r > INT64_MAX - 1
    j = impl.IntervalJoinBuffers(INT64_MIN, INT64_MAX)
    j.process(LEFT, a(1, 1, 1), a(0, 1, -1), a(1, 2, 3), a(INT64_MIN, INT64_MIN, INT64_MIN))
    rights = a(INT64_MIN + 1, INT64_MAX - 1, INT64_MAX)
    result = j.process(RIGHT, a(1, 1, 1), rights, a(5, 6, 7), a(INT64_MIN, INT64_MIN, INT64_MIN))
    assert pairs_of(result) == [(3, 5), (1, 5), (2, 5), (3, 6), (1, 6), (2, 6), (1, 7), (2, 7)]
    # purge times: left ts + INT64_MAX is INT64_MAX - 1 for l=-1 and saturates for l >= 0; right
    # ts - INT64_MIN is 1 for r=INT64_MIN + 1 and saturates for r >= 0
    assert [x.tolist() for x in j.purge(INT64_MAX - 1)] == [[3], [5]]
    assert [x.tolist() for x in j.purge(INT64_MAX)] == [[1, 2], [6, 7]]


def test_equal_bounds_with_an_exclusive_flag_match_nothing(impl):
    j = impl.IntervalJoinBuffers(3, 3, lower_exclusive=True)
    j.process(LEFT, a(1), a(10), a(1), a(0))
    assert pairs_of(j.process(RIGHT, a(1), a(13), a(2), a(0))) == []
    j = impl.IntervalJoinBuffers(3, 3)
    j.process(LEFT, a(1), a(10), a(1), a(0))
    assert pairs_of(j.process(RIGHT, a(1), a(13), a(2), a(0))) == [(1, 2)]


def test_empty_batches_and_empty_purges(impl):
    j = impl.IntervalJoinBuffers(-5, 5)
    result = j.process(LEFT, a(), a(), a(), a())
    assert result.left_rows.tolist() == [] and result.late.dtype == np.bool_ and len(result.late) == 0
    left, right = j.purge(INT64_MAX)
    assert left.dtype == right.dtype == np.int64 and len(left) == len(right) == 0
    assert len(j) == 0 and j.nbytes > 0


def test_durations_and_narrow_integer_columns_are_accepted(impl):
    j = impl.IntervalJoinBuffers(datetime.timedelta(seconds=-1), datetime.timedelta(seconds=1))
    assert j.snapshot()["lower"] == -1000
    keys = np.array([1], dtype=np.int32)
    j.process(LEFT, keys, np.array([0], dtype=np.int32), np.array([1], dtype=np.uint8), np.array([-1], dtype=np.int16))
    assert pairs_of(j.process(RIGHT, keys, a(1000), a(2), a(-1))) == [(1, 2)]


def test_input_arrays_are_not_modified_and_may_be_read_only(impl):
    cols = [a(1, 1), a(5, 3), a(1, 2), a(0, 0)]
    for col in cols:
        col.flags.writeable = False
    j = impl.IntervalJoinBuffers(-5, 5)
    j.process(LEFT, *cols)
    assert cols[1].tolist() == [5, 3]


# --- memory stays bounded over a long stream -------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS, ids=IMPL_IDS)
def test_memory_does_not_grow_with_stream_length(impl):
    """Keys come and go (as order ids do) and watermarks advance: len and nbytes level off."""
    seed = 20261126
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    j = impl.IntervalJoinBuffers(-50, 50)
    per_batch, n_batches = 200, 120 if impl is _core else 40
    lens, sizes = [], []
    row = 0
    for b in range(n_batches):
        side = b % 2
        ts = (b * per_batch + np.arange(per_batch)) * 2 + rng.integers(-20, 20, per_batch)
        # a slowly rotating population of keys: old keys never come back
        keys = b // 4 * 20 + rng.integers(0, 40, per_batch)
        wm = np.full(per_batch, b * per_batch * 2 - 100, dtype=np.int64)
        j.process(side, keys, ts, np.arange(row, row + per_batch), wm)
        row += per_batch
        j.purge(int(wm[-1]))
        lens.append(len(j))
        sizes.append(j.nbytes)
    quarter = n_batches // 4
    # buffered rows: those with ts within ~upper of the watermark, i.e. a couple of batches' worth
    assert max(lens) <= 3 * per_batch
    assert max(lens[-quarter:]) <= 1.5 * max(lens[quarter : 2 * quarter])
    assert max(sizes[-quarter:]) <= 1.5 * max(sizes[quarter : 2 * quarter])
    j.purge(INT64_MAX)
    assert len(j) == 0
    assert j.nbytes <= impl.IntervalJoinBuffers(-50, 50).nbytes + 64 * 1024


def test_compiled_gives_memory_back_after_a_burst():
    j = _core.IntervalJoinBuffers(-10, 10)
    empty = j.nbytes
    n = 50_000
    j.process(LEFT, np.zeros(n, dtype=np.int64), np.arange(n), np.arange(n), np.full(n, -1, dtype=np.int64))
    assert j.nbytes >= n * 16
    j.purge(n - 100)  # keeps ts + 10 > n - 100: the last 109 rows of the one key
    assert len(j) == 109
    assert j.nbytes < n * 16 / 4
    j.purge(INT64_MAX)
    assert len(j) == 0 and j.nbytes <= empty + 4096


def test_compiled_gives_memory_back_after_a_burst_of_keys():
    j = _core.IntervalJoinBuffers(-10, 10)
    empty = j.nbytes
    n = 100_000
    keys = np.arange(n) * 3 - n  # many distinct keys, as order ids would be
    j.process(RIGHT, keys, np.arange(n), np.arange(n), np.full(n, -1, dtype=np.int64))
    assert j.nbytes >= n * 16
    j.purge(n - 51 + 10)  # right rows are due when W >= ts + 10: keeps ts >= n - 50, 50 keys
    assert len(j) == 50 and j.nbytes < 64 * 1024
    j.purge(INT64_MAX)
    assert len(j) == 0 and j.nbytes <= empty + 4096


def test_compiled_gives_memory_back_after_a_shuffled_burst():
    seed = 11
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    j = _core.IntervalJoinBuffers(-10, 10)
    empty = j.nbytes
    n = 50_000
    ts = rng.permutation(n)
    j.process(LEFT, rng.integers(0, 5_000, n), ts, np.arange(n), np.full(n, -1, dtype=np.int64))
    j.purge(n - 100 + 10)  # keeps ts >= n - 99
    assert len(j) == 99
    assert j.nbytes < 64 * 1024
    j.purge(INT64_MAX)
    assert len(j) == 0 and j.nbytes <= empty + 4096


def test_compiled_object_without_init_is_empty_not_broken():
    # pickle-like paths may create the object with __new__ only: its C++ state must still be valid
    j = _core.IntervalJoinBuffers.__new__(_core.IntervalJoinBuffers)
    assert len(j) == 0
    assert [x.tolist() for x in j.purge(INT64_MAX)] == [[], []]
    j.process(LEFT, a(1), a(5), a(0), a(0))
    assert len(j) == 1 and j.purge(INT64_MAX)[0].tolist() == [0]


def test_compiled_purge_with_nothing_due_leaves_state_alone():
    j = _core.IntervalJoinBuffers(-10, 10)
    keys = np.arange(1000)
    j.process(LEFT, keys, np.full(1000, 100), keys, np.zeros(1000, dtype=np.int64))
    before = j.snapshot()
    for w in range(0, 110):  # due at W >= 110
        left, right = j.purge(w)
        assert len(left) == len(right) == 0
    assert_same_snapshot(j.snapshot(), before)
    assert len(j.purge(110)[0]) == 1000


# --- bad input -----------------------------------------------------------------------------------


def error_of(fn):
    try:
        fn()
    except (TypeError, ValueError) as exc:
        return type(exc), str(exc)
    raise AssertionError("no error raised")


def same_error_from_both(make_call):
    """The compiled kernel and the twin raise the same exception type and message."""
    errors = [error_of(lambda impl=impl: make_call(impl)) for impl in IMPLS]
    assert errors[0] == errors[1]
    return errors[0]


def test_lower_above_upper_names_both():
    kind, message = same_error_from_both(lambda impl: impl.IntervalJoinBuffers(5, 3))
    assert kind is ValueError and "lower=5" in message and "upper=3" in message


@pytest.mark.parametrize(
    "args, kind, fragment",
    [
        ((1.5, 3), TypeError, "lower must be an int"),
        ((0, "3"), TypeError, "upper must be an int"),
        ((0, 2**63), ValueError, "upper=9223372036854775808 does not fit in int64"),
        ((0, 3, "yes"), TypeError, "lower_exclusive must be a bool"),
        ((0, 3, False, 1), TypeError, "upper_exclusive must be a bool"),
    ],
)
def test_bad_constructor_arguments(args, kind, fragment):
    got_kind, message = same_error_from_both(lambda impl: impl.IntervalJoinBuffers(*args))
    assert got_kind is kind and fragment in message


@pytest.mark.parametrize(
    "call, kind, fragment",
    [
        (lambda j: j.process(2, a(1), a(1), a(1), a(0)), ValueError, "side must be LEFT (0) or RIGHT (1)"),
        (lambda j: j.process(True, a(1), a(1), a(1), a(0)), ValueError, "side must be LEFT"),
        (lambda j: j.process(0, a(1, 2), a(1), a(1), a(0)), ValueError, "key_ids=2, ts=1, row_ids=1, wm_before=1"),
        (lambda j: j.process(0, a(1), np.array([1.5]), a(1), a(0)), TypeError, "ts must be an int64 array"),
        (lambda j: j.process(0, a(1), a(1), np.array([True]), a(0)), TypeError, "row_ids must be an int64 array"),
        (lambda j: j.process(0, a(1), a(1), a(1), np.zeros((1, 1), dtype=np.int64)), ValueError, "wm_before must be a 1-D"),
        (lambda j: j.process(0, ["a"], a(1), a(1), a(0)), TypeError, "key_ids must be an int64 array"),
        (lambda j: j.process(0, a(1), np.array([2**64 - 1], dtype=np.uint64), a(1), a(0)), ValueError, "does not fit"),
        (lambda j: j.purge(1.5), TypeError, "watermark must be an int"),
        (lambda j: j.purge(2**64), ValueError, "watermark=18446744073709551616 does not fit in int64"),
    ],
)
def test_bad_process_and_purge_arguments(call, kind, fragment):
    def make(impl):
        j = impl.IntervalJoinBuffers(-5, 5)
        j.process(LEFT, a(1), a(10), a(1), a(0))
        call(j)

    got_kind, message = same_error_from_both(make)
    assert got_kind is kind and fragment in message


def test_bad_input_leaves_the_buffers_unchanged(impl):
    j = impl.IntervalJoinBuffers(-5, 5)
    j.process(LEFT, a(1), a(10), a(1), a(0))
    before = j.snapshot()
    with pytest.raises(ValueError):
        j.process(RIGHT, a(1, 1), a(10, 11), a(2, 3), a(0))
    assert_same_snapshot(j.snapshot(), before)


def good_snapshot():
    j = _reference.IntervalJoinBuffers(-5, 5)
    j.process(LEFT, a(1, 2), a(10, 11), a(1, 2), a(0, 0))
    return j.snapshot()


@pytest.mark.parametrize(
    "edit, kind, fragment",
    [
        (lambda s: [1, 2], TypeError, "expects a dict snapshot"),
        (lambda s: {k: v for k, v in s.items() if k != "right_ts"}, ValueError, "missing ['right_ts']"),
        (lambda s: {**s, "lower": 9}, ValueError, "lower=9, upper=5"),
        (lambda s: {**s, "upper_exclusive": "no"}, TypeError, "upper_exclusive must be a bool"),
        (lambda s: {**s, "left_ts": s["left_ts"][:1]}, ValueError, "left_key_ids=2, left_ts=1, left_row_ids=2"),
        (lambda s: {**s, "right_row_ids": np.array([0.5])}, TypeError, "snapshot['right_row_ids'] must be an int64"),
    ],
)
def test_bad_snapshots_are_refused(edit, kind, fragment):
    got_kind, message = same_error_from_both(lambda impl: impl.IntervalJoinBuffers.restore(edit(good_snapshot())))
    assert got_kind is kind and fragment in message


def test_restore_reorders_an_unsorted_snapshot():
    snap = {**good_snapshot(), "left_key_ids": a(2, 1), "left_ts": a(11, 10), "left_row_ids": a(2, 1)}
    for impl in IMPLS:
        j = impl.IntervalJoinBuffers.restore(snap)
        assert j.snapshot()["left_key_ids"].tolist() == [1, 2]
        assert pairs_of(j.process(RIGHT, a(1, 2), a(12, 12), a(5, 6), a(0, 0))) == [(1, 5), (2, 6)]
