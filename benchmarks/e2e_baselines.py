"""The end-to-end workload and the two baselines the engine is measured against.

Workload (issue 3): 1,000,000 events, 1,000 keys, event time advancing 1 ms per event with up to 2 s of
disorder, 1 s tumbling windows, watermark lag 5 s (``BoundedOutOfOrderness(5_000)``), count + sum per
key and window. Both baselines implement SEMANTICS.md's per-record watermark rule, so all three compute
the same windows:

* `python_loop`: the tight pure-Python dict loop a Faust/Bytewax-style user would write.
* `numpy_streaming`: the same streaming computation in micro-batches of 65,536 with numpy
  (running-max watermark, late mask, window ids, ``np.unique`` group-by, merge into columnar state, fire
  by watermark).
"""

from __future__ import annotations

import numpy as np

N_EVENTS = 1_000_000
N_KEYS = 1_000
WINDOW = 1_000
LAG = 5_000
DISORDER = 2_000
BATCH = 65_536
INT64_MIN = -(2**63)
SEED = 20261126


def make_columns(n: int = N_EVENTS, seed: int = SEED) -> dict[str, np.ndarray]:
    """Columns ``ts`` (int64 ms), ``user`` (int64 key) and ``amount`` (float64), seeded."""
    rng = np.random.default_rng(seed)
    base = 1_700_000_000_000
    ts = base + np.arange(n, dtype=np.int64) - rng.integers(0, DISORDER + 1, size=n)
    return {
        "ts": ts.astype(np.int64),
        "user": rng.integers(0, N_KEYS, size=n).astype(np.int64),
        "amount": np.round(rng.random(n) * 100.0, 2),
    }


def make_records(columns: dict[str, np.ndarray]) -> list[dict]:
    """The same events as a list of dicts (as a JSON or Kafka source would deliver them)."""
    names = list(columns)
    return [dict(zip(names, row)) for row in zip(*(columns[n].tolist() for n in names))]


def python_loop(records: list[dict]) -> list[dict]:
    """Per-record streaming tumbling count+sum with the per-record watermark; returns window dicts."""
    size, lag = WINDOW, LAG
    windows: dict[int, dict] = {}  # start -> {key: [count, sum]}
    out: list[dict] = []
    watermark = INT64_MIN
    max_ts = INT64_MIN
    lowest = None  # smallest live window start
    late = 0
    for record in records:
        ts = record["ts"]
        start = ts - ts % size
        if watermark >= start + size - 1:
            late += 1
        else:
            per_key = windows.get(start)
            if per_key is None:
                per_key = windows[start] = {}
                if lowest is None or start < lowest:
                    lowest = start
            acc = per_key.get(record["user"])
            if acc is None:
                per_key[record["user"]] = [1, record["amount"]]
            else:
                acc[0] += 1
                acc[1] += record["amount"]
        if ts > max_ts:
            max_ts = ts
            watermark = ts - lag - 1
            if lowest is not None and watermark >= lowest + size - 1:
                lowest = _fire(windows, watermark, size, out)
    _fire(windows, 2**63 - 1, size, out)
    return out


def _fire(windows: dict, watermark: int, size: int, out: list) -> int | None:
    for start in sorted(windows):
        if watermark < start + size - 1:
            return start
        for key, (count, total) in sorted(windows.pop(start).items()):
            out.append({"key": key, "start": start, "end": start + size, "count": count, "total": total})
    return None


def numpy_streaming(columns: dict[str, np.ndarray], batch: int = BATCH) -> dict[str, np.ndarray]:
    """The same computation with numpy over micro-batches; returns result columns."""
    size, lag = WINDOW, LAG
    ts_all, key_all, amount_all = columns["ts"], columns["user"], columns["amount"]
    state_gid = np.empty(0, dtype=np.int64)  # window index * N_KEYS + key
    state_count = np.empty(0, dtype=np.int64)
    state_sum = np.empty(0, dtype=np.float64)
    out_gid, out_count, out_sum = [], [], []
    max_ts = INT64_MIN
    for lo in range(0, len(ts_all), batch):
        ts = ts_all[lo : lo + batch]
        keys = key_all[lo : lo + batch]
        amount = amount_all[lo : lo + batch]
        # per-record rule: the watermark before record i comes from records before it
        running = np.maximum.accumulate(ts)
        seen_before = np.empty_like(ts)
        seen_before[0] = max_ts
        np.maximum(running[:-1], max_ts, out=seen_before[1:])
        watermark_before = np.where(seen_before == INT64_MIN, INT64_MIN, seen_before - lag - 1)
        window_index = ts // size
        on_time = watermark_before < window_index * size + size - 1
        gid = window_index[on_time] * N_KEYS + keys[on_time]
        groups, inverse = np.unique(gid, return_inverse=True)
        counts = np.bincount(inverse, minlength=len(groups))
        sums = np.bincount(inverse, weights=amount[on_time], minlength=len(groups))
        # merge into the columnar state
        merged_gid = np.concatenate([state_gid, groups])
        merged, inverse = np.unique(merged_gid, return_inverse=True)
        state_count = np.bincount(inverse, weights=np.concatenate([state_count, counts]), minlength=len(merged)).astype(np.int64)
        state_sum = np.bincount(inverse, weights=np.concatenate([state_sum, sums]), minlength=len(merged))
        state_gid = merged
        max_ts = max(max_ts, int(running[-1]))
        watermark = max_ts - lag - 1
        fire = (state_gid // N_KEYS) * size + size - 1 <= watermark
        if fire.any():
            out_gid.append(state_gid[fire])
            out_count.append(state_count[fire])
            out_sum.append(state_sum[fire])
            keep = ~fire
            state_gid, state_count, state_sum = state_gid[keep], state_count[keep], state_sum[keep]
    out_gid.append(state_gid)
    out_count.append(state_count)
    out_sum.append(state_sum)
    gid = np.concatenate(out_gid)
    start = (gid // N_KEYS) * size
    return {
        "key": gid % N_KEYS,
        "start": start,
        "end": start + size,
        "count": np.concatenate(out_count),
        "total": np.concatenate(out_sum),
    }


def canonical(result) -> list[tuple]:
    """Window results (dicts or columns) as sorted ``(key, start, end, count, round(total, 6))``."""
    if isinstance(result, dict):
        rows = zip(*(np.asarray(result[c]).tolist() for c in ("key", "start", "end", "count", "total")))
    else:
        rows = ((r["key"], r["start"], r["end"], r["count"], r["total"]) for r in result)
    return sorted((int(k), int(s), int(e), int(c), round(float(t), 6)) for k, s, e, c, t in rows)


def assert_same_windows(engine_result, baseline_result) -> None:
    a, b = canonical(engine_result), canonical(baseline_result)
    assert len(a) == len(b), f"{len(a)} windows vs {len(b)}"
    assert a == b, "window results differ"
