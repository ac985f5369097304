"""The source operator's per-partition watermarks (SEMANTICS.md: one tracker per input partition)."""

from __future__ import annotations

import numpy as np

from engine import BoundedOutOfOrderness, SourceChunk
from engine.runtime.operators.sources import SourceOperator

MIN = -(2**63)


def chunk(partition, *ts):
    return SourceChunk(partition, records=[{"ts": t} for t in ts])


def test_each_record_sees_its_partition_watermark_bounded_by_the_other_partitions():
    op = SourceOperator("src", [0, 1], "ts", BoundedOutOfOrderness(10))
    first = op.process_chunk(chunk(0, 100, 200, 150)).main
    # Partition 1 has produced nothing: it holds every record of partition 0 at INT64_MIN.
    assert first.wm.tolist() == [MIN, MIN, MIN] and first.watermark == MIN
    second = op.process_chunk(chunk(1, 120, 130)).main
    # Partition 1's own rule (from its earlier records), bounded by partition 0's current 200 - 10 - 1.
    assert second.wm.tolist() == [MIN, 120 - 11]
    assert second.watermark == min(189, 130 - 11)
    third = op.process_chunk(chunk(0, 300)).main
    assert third.wm.tolist() == [min(189, 119)]
    end = op.end_partition(1).main
    assert end.watermark == 300 - 11, "an ended partition no longer holds the others back"


def test_filtered_out_records_still_advance_the_watermark_and_results_ignore_batching():
    whole = SourceOperator("src", [0], "ts", BoundedOutOfOrderness(5))
    split = SourceOperator("src", [0], "ts", BoundedOutOfOrderness(5))
    ts = [10, 40, 20, 70, 65, 90]
    expected = whole.process_chunk(chunk(0, *ts)).main.wm
    got = np.concatenate([split.process_chunk(chunk(0, *part)).main.wm for part in ([10], [40, 20], [70, 65, 90])])
    assert got.tolist() == expected.tolist() == [MIN, 4, 34, 34, 64, 64]


def test_idle_partitions_stop_holding_the_watermark_back():
    op = SourceOperator("src", [0, 1], "ts", BoundedOutOfOrderness(0, idle_timeout=1000))
    op.process_chunk(chunk(0, 500))
    assert op.watermark == MIN
    now = op.partitions[1].last_seen + 2.0  # two seconds of wall clock later
    op.partitions[0].last_seen = now  # partition 0 is active
    out = op.tick(now)
    assert out is not None and out.main.watermark == 499 and not out.main.idle
    assert op.tick(now) is None, "nothing changed"
