"""`connectors.kafka_fetch`: slices of consumed records gathered into columns and joined per partition."""

from __future__ import annotations

import numpy as np
import pytest
from aiokafka import TopicPartition

from connectors.kafka_fetch import FetchBuffer, FetchedRecords, KafkaMessage
from tests.connectors.kafka_helpers import Message

A, B = TopicPartition("t", 0), TopicPartition("t", 1)


def messages(tp: TopicPartition, offsets) -> list[Message]:
    return [Message(tp.topic, tp.partition, o, 1_000 + o, b"k%d" % o if o % 2 else None, b"v%d" % o,
                    (("h", b"%d" % o),) if o % 3 == 0 else ()) for o in offsets]


def as_messages(records: FetchedRecords) -> list[KafkaMessage]:
    return [records.message(i) for i in range(len(records))]


def expected(tp: TopicPartition, offsets) -> list[KafkaMessage]:
    return [KafkaMessage(m.topic, m.partition, m.offset, m.timestamp, m.key, m.value, m.headers)
            for m in messages(tp, offsets)]


def test_slices_of_each_partition_are_joined_in_order():
    buffer = FetchBuffer()
    buffer.add(A, messages(A, range(0, 3)))
    buffer.add(B, messages(B, range(10, 12)))
    buffer.add(A, messages(A, range(3, 7)))
    buffer.add(B, [])
    assert len(buffer) == 9
    records = buffer.records()
    assert list(records) == [A, B]
    assert as_messages(records[A]) == expected(A, range(0, 7))
    assert as_messages(records[B]) == expected(B, range(10, 12))
    assert records[A].offsets.dtype == records[A].timestamps.dtype == np.int64
    assert (records[A].first_offset, records[A].last_offset) == (0, 6)


def test_offsets_may_have_gaps():  # compacted topics, transaction markers
    buffer = FetchBuffer()
    buffer.add(A, messages(A, [0, 5, 9]))
    buffer.add(A, messages(A, [12, 40]))
    assert buffer.records()[A].offsets.tolist() == [0, 5, 9, 12, 40]


@pytest.mark.parametrize("back_to, kept", [
    (5, list(range(0, 5))),   # into the last slice: its tail goes
    (3, list(range(0, 3))),   # to the start of the last slice: all of it goes
    (1, [0]),                 # into an earlier slice: the later slices go too
    (0, []),                  # before everything held
])
def test_a_slice_going_back_replaces_what_it_returns_again(back_to, kept):
    buffer = FetchBuffer()
    buffer.add(A, messages(A, range(0, 3)))
    buffer.add(A, messages(A, range(3, 7)))
    buffer.add(B, messages(B, range(0, 2)))
    buffer.add(A, messages(A, range(back_to, 9)))
    assert len(buffer) == len(kept) + len(range(back_to, 9)) + 2
    assert buffer.records()[A].offsets.tolist() == kept + list(range(back_to, 9))
    assert as_messages(buffer.records()[A]) == expected(A, kept + list(range(back_to, 9)))


def test_cuts_by_offset():
    buffer = FetchBuffer()
    buffer.add(A, messages(A, [2, 4, 6, 8]))
    records = buffer.records()[A]
    assert records.from_offset(5).offsets.tolist() == [6, 8]
    assert records.from_offset(4).offsets.tolist() == [4, 6, 8]
    assert records.from_offset(2) is records
    assert len(records.from_offset(9)) == 0
    assert records.below_offset(6).offsets.tolist() == [2, 4]
    assert as_messages(records.below_offset(5)) == expected(A, [2, 4])
    assert records.below_offset(100) is records
    assert not records.below_offset(2)


def test_a_message_with_decoded_key_and_value():
    buffer = FetchBuffer()
    buffer.add(A, messages(A, [3]))
    records = buffer.records()[A]
    got = records.message(0, key="three", value=None)  # a JSON null value stays None
    assert got == KafkaMessage("t", 0, 3, 1_003, "three", None, (("h", b"3"),))
    assert type(got.offset) is int and type(got.timestamp) is int


def test_an_empty_buffer():
    buffer = FetchBuffer()
    assert not buffer and len(buffer) == 0 and buffer.records() == {}
    buffer.add(A, messages(A, [0]))
    buffer.add(A, messages(A, [0]))  # went back to the start: one record, not two
    assert len(buffer) == 1 and buffer.records()[A].offsets.tolist() == [0]


def test_going_back_into_a_slice_with_gaps():
    buffer = FetchBuffer()
    buffer.add(A, messages(A, [0, 2, 4]))
    buffer.add(A, messages(A, [6, 7, 9, 11]))
    buffer.add(A, messages(A, [8, 9, 10]))  # back to 8: 9 and 11 go, 0..7 stay
    assert len(buffer) == 8
    assert as_messages(buffer.records()[A]) == expected(A, [0, 2, 4, 6, 7, 8, 9, 10])
