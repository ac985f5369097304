"""A Kafka sink's window results as record batches: 632,000 rows in 30 writes, the shape of the Kafka
bench's 1 s job (int64 key/start/end/count columns, ~46 MB of JSON values), framed into 256 KiB batches.

The engine (`connectors.kafka_framing.framed_json_batches`: one kernel call per write, each row's JSON
encoded straight into its record batch) against what `KafkaSink` did before (`json_object_rows` into one
buffer, then `framed_batches` copying the values into the batches) and against msgspec-encoded row dicts
appended to aiokafka's own ``BatchBuilder`` (a sink without kernels). Every case's batches are built
(header and CRC-32C) and compared byte for byte. ``report`` prints the median ratios of alternated runs
(the table's are best against best); the batches' fresh memory costs page faults in every case.
"""

from __future__ import annotations

import functools
import statistics
import time

import msgspec
import numpy as np
from aiokafka.producer.message_accumulator import BatchBuilder

from benchmarks._harness import Case, pytest_cases, run_case_with_benchmark
from connectors.kafka_framing import framed_batches, framed_json_batches
from engine import kernels
from engine.batch import columns_to_records

N_ROWS = 632_000
N_WRITES = 30
LIMIT = 256 * 1024
SEED = 20261126
_ENCODE = msgspec.json.Encoder().encode
NAMES = [_ENCODE(name) for name in ("key", "start", "end", "count")]


@functools.lru_cache(maxsize=1)
def workload() -> list[tuple[list[np.ndarray], np.ndarray]]:
    """``N_WRITES`` writes of window results: user ids, 1 s windows of 2023, counts; the message
    timestamp of a result is its window's end - 1."""
    rng = np.random.default_rng(SEED)
    writes = []
    for w, n in enumerate(np.diff(np.linspace(0, N_ROWS, N_WRITES + 1).astype(np.int64)).tolist()):
        start = 1_700_000_000_000 + (w * 40 + rng.integers(0, 40, n)) * 1000
        columns = [rng.integers(0, 100_000, n), start, start + 1000, rng.integers(1, 20, n)]
        writes.append((columns, start + 999))
    return writes


def engine(writes) -> list[bytearray]:
    return [batch._build() for columns, ts in writes
            for batch in framed_json_batches(NAMES, columns, ts, LIMIT)]


def two_kernels(writes) -> list[bytearray]:
    return [batch._build() for columns, ts in writes
            for batch in framed_batches(*kernels.json_object_rows(NAMES, columns), ts, LIMIT)]


def aiokafka_builder(writes) -> list[bytearray]:
    out = []
    for columns, ts in writes:
        records = columns_to_records(dict(zip(("key", "start", "end", "count"), columns)))
        builder = BatchBuilder(LIMIT, 0, is_transactional=False)
        for record, timestamp in zip(records, ts.tolist()):
            value = _ENCODE(record)
            if builder.append(timestamp=timestamp, key=None, value=value, headers=[]) is None:
                out.append(builder._build())
                builder = BatchBuilder(LIMIT, 0, is_transactional=False)
                builder.append(timestamp=timestamp, key=None, value=value, headers=[])
        out.append(builder._build())
    return out


def _same_bytes(engine_result, baseline_result) -> None:
    assert engine_result == baseline_result, "record batches differ"


def _same_records(engine_result, baseline_result) -> None:
    # aiokafka's compiled builder refuses a record that would end exactly at the limit (Java's rule and
    # ours take it), so batch boundaries may differ; the records and their order may not.
    from aiokafka.record.default_records import DefaultRecordBatch

    def records(batches):
        return [(r.timestamp, r.value) for batch in batches for r in DefaultRecordBatch(batch)]
    assert records(engine_result) == records(baseline_result), "records differ"


GROUP = "window results -> Kafka batches, 632k rows"
RUNS = {"engine": engine, "json_object_rows + framed_batches": two_kernels,
        "msgspec + aiokafka BatchBuilder": aiokafka_builder}
CASES = [
    Case(GROUP, "engine", workload, engine, repeat=7),
    Case(GROUP, "json_object_rows + framed_batches", workload, two_kernels, repeat=7, check=_same_bytes),
    Case(GROUP, "msgspec + aiokafka BatchBuilder", workload, aiokafka_builder, repeat=3, check=_same_records),
]


def report(rounds: int = 7) -> str:
    """Median times and ratios of alternated runs of the engine and the two-kernel path."""
    writes = workload()
    times: dict[str, list[float]] = {"engine": [], "json_object_rows + framed_batches": []}
    for _ in range(rounds):
        for name in times:
            started = time.perf_counter()
            RUNS[name](writes)
            times[name].append(time.perf_counter() - started)
    ratios = [b / e for b, e in zip(times["json_object_rows + framed_batches"], times["engine"])]
    return (f"{GROUP} / json_object_rows + framed_batches: median engine "
            f"{statistics.median(times['engine']) * 1e3:.1f} ms, two kernels "
            f"{statistics.median(times['json_object_rows + framed_batches']) * 1e3:.1f} ms, "
            f"median ratio {statistics.median(ratios):.2f}x")


@pytest_cases(CASES)
def test_sinkframing(benchmark, case):
    run_case_with_benchmark(benchmark, case)
