"""`connectors.kafka_fetch`: slices of consumed records gathered into columns and joined per partition."""

from __future__ import annotations

import numpy as np
import pytest
from aiokafka import TopicPartition

from connectors.json_batches import JsonColumnDecoder
from connectors.kafka_fetch import FetchBuffer, FetchedRecords, KafkaMessage, unwrap_fetched
from tests.connectors.kafka_helpers import Message, produce

A, B = TopicPartition("t", 0), TopicPartition("t", 1)


def messages(tp: TopicPartition, offsets) -> list[Message]:
    return [Message(tp.topic, tp.partition, o, 1_000 + o, b"k%d" % o if o % 2 else None, b"v%d" % o,
                    (("h", b"%d" % o),) if o % 3 == 0 else ()) for o in offsets]


def by_partition(buffer: FetchBuffer) -> dict[TopicPartition, FetchedRecords]:
    """The buffer's records per partition, each in one run (no decoder: slices are kept alike)."""
    runs = buffer.records()
    assert len({tp for tp, _ in runs}) == len(runs)
    return dict(runs)


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
    records = by_partition(buffer)
    assert list(records) == [A, B]
    assert as_messages(records[A]) == expected(A, range(0, 7))
    assert as_messages(records[B]) == expected(B, range(10, 12))
    assert records[A].offsets.dtype == records[A].timestamps.dtype == np.int64
    assert (records[A].first_offset, records[A].last_offset) == (0, 6)


def test_offsets_may_have_gaps():  # compacted topics, transaction markers
    buffer = FetchBuffer()
    buffer.add(A, messages(A, [0, 5, 9]))
    buffer.add(A, messages(A, [12, 40]))
    assert by_partition(buffer)[A].offsets.tolist() == [0, 5, 9, 12, 40]


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
    assert by_partition(buffer)[A].offsets.tolist() == kept + list(range(back_to, 9))
    assert as_messages(by_partition(buffer)[A]) == expected(A, kept + list(range(back_to, 9)))


def test_cuts_by_offset():
    buffer = FetchBuffer()
    buffer.add(A, messages(A, [2, 4, 6, 8]))
    records = by_partition(buffer)[A]
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
    records = by_partition(buffer)[A]
    got = records.message(0, key="three", value=None)  # a JSON null value stays None
    assert got == KafkaMessage("t", 0, 3, 1_003, "three", None, (("h", b"3"),))
    assert type(got.offset) is int and type(got.timestamp) is int


def test_an_empty_buffer():
    buffer = FetchBuffer()
    assert not buffer and len(buffer) == 0 and buffer.records() == []
    buffer.add(A, messages(A, [0]))
    buffer.add(A, messages(A, [0]))  # went back to the start: one record, not two
    assert len(buffer) == 1 and by_partition(buffer)[A].offsets.tolist() == [0]


def test_going_back_into_a_slice_with_gaps():
    buffer = FetchBuffer()
    buffer.add(A, messages(A, [0, 2, 4]))
    buffer.add(A, messages(A, [6, 7, 9, 11]))
    buffer.add(A, messages(A, [8, 9, 10]))  # back to 8: 9 and 11 go, 0..7 stay
    assert len(buffer) == 8
    assert as_messages(by_partition(buffer)[A]) == expected(A, [0, 2, 4, 6, 7, 8, 9, 10])


# ---- with a decoder: slices decoded as they arrive ----

def json_messages(tp: TopicPartition, offsets, bad=()) -> list[Message]:
    """Messages whose values are JSON objects with a ``user``, except at ``bad`` offsets (not JSON)."""
    return [Message(tp.topic, tp.partition, o, 1_000 + o, b"k%d" % o, b"{" if o in bad else b'{"user": %d, "x": 1}' % (o % 5),
                    (("h", b"%d" % o),)) for o in offsets]


def test_slices_that_decode_whole_keep_only_their_columns():
    decoder = JsonColumnDecoder({"user": "key"})
    buffer = FetchBuffer(decoder)
    buffer.add(A, json_messages(A, range(0, 3)))
    buffer.add(B, json_messages(B, range(0, 2)))
    buffer.add(A, json_messages(A, range(3, 7)))
    runs = buffer.records()
    assert [tp for tp, _ in runs] == [A, B]
    records = runs[0][1]
    assert records.offsets.tolist() == list(range(7)) and records.timestamps.tolist() == [1_000 + o for o in range(7)]
    assert records.values is records.keys is records.headers is None
    assert records.columns["user"].tolist() == [o % 5 for o in range(7)]
    assert records.columns["user"].dtype == np.int64
    with pytest.raises(ValueError, match="decoded"):
        records.message(0)
    cut = records.from_offset(2).below_offset(5)
    assert cut.offsets.tolist() == [2, 3, 4] and cut.columns["user"].tolist() == [2, 3, 4]


def test_a_slice_that_does_not_decode_keeps_its_messages_in_a_run_of_its_own():
    decoder = JsonColumnDecoder({"user": "key"})
    buffer = FetchBuffer(decoder)
    buffer.add(A, json_messages(A, range(0, 3)))
    buffer.add(A, json_messages(A, range(3, 6), bad={4}))
    buffer.add(A, json_messages(A, range(6, 8), bad={7}))
    buffer.add(A, json_messages(A, range(8, 10)))
    runs = [records for _, records in buffer.records()]
    assert [r.offsets.tolist() for r in runs] == [[0, 1, 2], [3, 4, 5, 6, 7], [8, 9]]
    assert [r.columns is None for r in runs] == [False, True, False]
    kept = runs[1]
    assert [kept.message(i) for i in range(len(kept))] == [
        KafkaMessage("t", 0, m.offset, m.timestamp, m.key, m.value, m.headers) for m in json_messages(A, range(3, 8), bad={4, 7})]
    assert len(buffer) == 10


def test_mixed_key_types_across_slices_join_as_one_batch_would():
    decoder = JsonColumnDecoder({"user": "key"})
    buffer = FetchBuffer(decoder)
    first = json_messages(A, range(0, 2))
    second = [Message("t", 0, 2, 1_002, None, b'{"user": "ann"}', ())]
    buffer.add(A, first)
    buffer.add(A, second)
    (_, records), = buffer.records()
    expected_columns = decoder.decode([m.value for m in first + second])
    assert records.columns["user"].dtype == expected_columns["user"].dtype == object
    assert records.columns["user"].tolist() == expected_columns["user"].tolist() == [0, 1, "ann"]


@pytest.mark.parametrize("back_to", [9, 8, 6, 4, 3, 1, 0])
def test_going_back_across_runs(back_to):
    decoder = JsonColumnDecoder({"user": "key"})
    buffer = FetchBuffer(decoder)
    buffer.add(A, json_messages(A, range(0, 3)))
    buffer.add(A, json_messages(A, range(3, 6), bad={4}))
    buffer.add(A, json_messages(A, range(6, 10)))
    buffer.add(A, json_messages(A, range(back_to, 12)))
    runs = [records for _, records in buffer.records()]
    assert np.concatenate([r.offsets for r in runs]).tolist() == list(range(12))
    assert len(buffer) == 12
    for r in runs:  # every run holds what its kind holds, for exactly its offsets
        if r.columns is None:
            assert len(r.values) == len(r.keys) == len(r.headers) == len(r)
            assert [r.message(i).offset for i in range(len(r))] == r.offsets.tolist()
        else:
            assert r.columns["user"].tolist() == [o % 5 for o in r.offsets.tolist()]


# ---- unwrap_fetched, against the broker ----

async def _fetch_all(consumer, n: int) -> list[list]:
    """Every record of an ``n``-record topic, a list per poll, unwrapping before each poll as
    `KafkaSource` does."""
    polls = []
    for _ in range(200):
        unwrap_fetched(consumer)
        polls.append([r for records in (await consumer.getmany(timeout_ms=200, max_records=7)).values()
                      for r in records])
        if sum(map(len, polls)) >= n:
            break
    return [poll for poll in polls if poll]


@pytest.mark.kafka
@pytest.mark.parametrize("deserialize", [False, True], ids=["raw", "with-deserializers"])
async def test_unwrapped_records_read_as_the_wrapped_ones(bootstrap_servers, topic_factory, deserialize):
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import ConsumerRecord

    topic = await topic_factory()
    sent = [(0, 1_000 + i, b"k%d" % i if i % 2 else None, b"v%d" % i, [("h", b"%d" % i)] if i % 3 == 0 else [])
            for i in range(50)]
    await produce(bootstrap_servers, topic, sent)
    options = {"key_deserializer": lambda k: k, "value_deserializer": bytes.upper} if deserialize else {}
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest",
                                enable_auto_commit=False, **options)
    await consumer.start()
    try:
        polls = await _fetch_all(consumer, len(sent))
    finally:
        await consumer.stop()

    # A consumer with deserializers keeps its wrappers (they apply them); else aiokafka's own records
    # come out, from the second poll on: the first one waited for the fetch, which arrived during it.
    assert len(polls) > 1
    assert all(isinstance(r, ConsumerRecord) == deserialize for poll in polls[1:] for r in poll)
    got = [r for poll in polls for r in poll]
    assert [(r.offset, r.timestamp, r.key, r.value, tuple(r.headers)) for r in got] == [
        (i, ts, key, value.upper() if deserialize else value, tuple(headers))
        for i, (_, ts, key, value, headers) in enumerate(sent)
    ]


def test_unwrapping_leaves_a_consumer_without_those_internals_alone():
    class Elsewhere:  # another consumer implementation: nothing to unwrap, nothing fails
        pass

    unwrap_fetched(Elsewhere())
    assert not hasattr(Elsewhere, "_fetcher")
