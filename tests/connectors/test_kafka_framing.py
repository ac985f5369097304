"""Record batches framed for the producer (`connectors.kafka_framing`) and the sink's JSON encoding of
columnar batches, against aiokafka's own batch builder and msgspec. No broker: the end-to-end paths are
in test_kafka.py."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.kafka import _json_columns
from connectors.kafka_framing import FramedBatch, framed_batches, framed_json_batches, framing_supported, values_buffer
from engine import kernels
from engine.batch import Batch, columns_to_records


def aiokafka_builder(values: list[bytes], timestamps: list[int], transactional: bool = False) -> BatchBuilder:
    builder = BatchBuilder(2**30, 0, is_transactional=transactional)
    for value, timestamp in zip(values, timestamps):
        assert builder.append(timestamp=timestamp, key=None, value=value, headers=[]) is not None
    return builder


def test_the_installed_aiokafka_takes_framed_batches():
    assert framing_supported()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.binary(max_size=50), st.integers(0, 2**45)), min_size=1, max_size=40), st.booleans())
def test_a_framed_batch_is_byte_for_byte_aiokafkas(messages, transactional):
    values = [v for v, _ in messages]
    timestamps = [t for _, t in messages]
    buffer, offsets = values_buffer(values)
    (framed,) = framed_batches(buffer, offsets, np.array(timestamps, dtype=np.int64), 2**30, transactional)
    expected = aiokafka_builder(values, timestamps, transactional)
    assert framed.record_count() == expected.record_count() == len(values)
    assert framed.size() == expected.size()
    assert framed._build() == expected._build()  # header, CRC and records
    # As an idempotent or transactional producer stamps it before sending:
    framed._set_producer_state(4711, 3, 99)
    stamped = aiokafka_builder(values, timestamps, transactional)
    stamped._set_producer_state(4711, 3, 99)
    assert framed._build() == stamped._build()
    parsed = DefaultRecordBatch(framed._build())
    assert parsed.validate_crc() and parsed.is_transactional == transactional
    assert parsed.producer_id == 4711 and parsed.base_sequence == 99
    assert [(r.value, r.timestamp, r.key, r.offset) for r in parsed] == [
        (v, t, None, i) for i, (v, t) in enumerate(zip(values, timestamps))]


def test_a_framed_batch_is_closed_to_the_producers_appends():
    (framed,) = framed_batches(*values_buffer([b"a"]), np.array([1], dtype=np.int64), 1024)
    assert framed.closed() and framed.append(timestamp=None, key=None, value=b"b", headers=[]) is None
    assert framed.record_count() == 1
    with pytest.raises(ValueError, match="at least one record"):
        FramedBatch(bytearray(70), 0, 0, 0)
    with pytest.raises(ValueError, match="needs more than 61 bytes"):
        FramedBatch(bytearray(61), 1, 0, 0)


def test_batches_split_at_the_limit_and_keep_every_value_in_order():
    values = [b"%d" % i * 7 for i in range(2_000)]
    timestamps = np.arange(2_000, dtype=np.int64) * 3 + 10
    batches = framed_batches(*values_buffer(values), timestamps, 4096)
    assert len(batches) > 3 and all(batch.size() <= 4096 for batch in batches)
    records = [r for batch in batches for r in DefaultRecordBatch(batch._build())]
    assert [r.value for r in records] == values and [r.timestamp for r in records] == timestamps.tolist()
    assert framed_batches(*values_buffer([]), np.empty(0, dtype=np.int64), 4096) == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.one_of(st.integers(-(2**62), 2**62), st.text(max_size=4)), st.integers(-(2**62), 2**62),
                  st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.floats(width=32)),
        min_size=1, max_size=20,
    )
)
def test_columns_encode_exactly_like_the_records_they_stand_for(rows):
    keys = [k for k, *_ in rows]
    key_column = np.array(keys, dtype=np.int64) if all(isinstance(k, int) for k in keys) else np.array(keys, dtype=object)
    columns = {
        "key": key_column,
        "start": np.array([r[1] for r in rows], dtype=np.int64),
        "mean": np.array([r[2] for r in rows], dtype=np.float64),
        "small": np.array([r[1] % 100 for r in rows], dtype=np.int16),
        "ratio": np.array([r[4] for r in rows], dtype=np.float32),
        "flag": np.array([r[3] for r in rows]),
    }
    batch = Batch(columns["start"], columns["start"], columns=columns)
    names, json_columns = _json_columns(batch)
    encode = msgspec.json.Encoder().encode
    expected = [encode(r) for r in columns_to_records(columns)]
    buffer, offsets = kernels.json_object_rows(names, json_columns)
    assert [buffer[offsets[i]:offsets[i + 1]] for i in range(len(rows))] == expected
    # Framed straight from the columns: the records aiokafka reads back carry the same values.
    timestamps = np.abs(columns["start"]) % 2**40
    framed = framed_json_batches(names, json_columns, timestamps, 512)
    records = [r for batch in framed for r in DefaultRecordBatch(batch._build())]
    assert [r.value for r in records] == expected and [r.timestamp for r in records] == timestamps.tolist()


def test_columns_the_kernel_does_not_take_go_to_the_records_path():
    ts = np.arange(2, dtype=np.int64)
    for column in (np.array(["a", "b"]), np.array([2**64 - 1, 1], dtype=np.uint64), ts.astype("datetime64[ms]")):
        assert _json_columns(Batch(ts, ts, columns={"start": ts, "odd": column})) is None
    assert _json_columns(Batch(ts, ts, columns={1: ts})) is None
    odd = np.array([1, object()], dtype=object)  # a column the kernel takes, holding a value it does not
    names, columns = _json_columns(Batch(ts, ts, columns={"start": ts, "odd": odd}))
    assert framed_json_batches(names, columns, ts, 1024) is None
    assert framed_json_batches(names, columns, ts, 1024, rows=np.array([0])) is not None  # only rows count
