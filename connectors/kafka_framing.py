"""Whole Kafka record batches for the producer, built from a batch's encoded values in one kernel call.

A sink writing hundreds of thousands of small messages per second spends most of its time in the
producer's per-message append (a Python call, a size check and a varint encoding for each message).
`framed_batches` instead encodes every record of a micro-batch with the `kafka_record_batches` kernel
(message format v2, no compression, no headers; keys, when given, partitioned by the `kafka_key_partitions`
kernel as Kafka's default partitioner does) and wraps each batch in a `FramedBatch`, which `AIOKafkaProducer.send_batch` accepts in place of its own ``BatchBuilder``: the
producer reads a batch only through ``record_count``, ``closed``, ``size``, ``append`` (refused: the batch
is closed), ``_set_producer_state`` (idempotent and transactional producers stamp their producer id,
epoch and sequence) and ``_build`` (the bytes of the batch). The bytes are exactly those aiokafka's own
builder writes for the same records (tests compare them, CRC included). `framed_json_batches` does the
same for the rows of columns as JSON objects (a sink's window results), encoding each row straight into
its batch (`kafka_json_record_batches`). `framing_supported` checks that the installed aiokafka still
reads batches through those names; the sink appends message by message otherwise.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from engine import kernels

__all__ = ["FramedBatch", "framed_batches", "framed_json_batches", "framing_supported", "values_buffer"]

# baseOffset, batchLength, partitionLeaderEpoch, magic, crc, attributes, lastOffsetDelta, firstTimestamp,
# maxTimestamp, producerId, producerEpoch, baseSequence, record count (KIP-98's RecordBatch)
_HEADER = struct.Struct(">qiibIhiqqqhii")
_CRC_AT = 17  # the CRC covers everything from the attributes (offset 21) on
_ATTRIBUTES_AT = 21
_TRANSACTIONAL = 0x10  # attributes bit 4
_MAGIC = 2


def _crc32c(data: bytes | bytearray | memoryview) -> int:
    # The engine's kernel (the SSE4.2 crc32 instruction where the CPU has it): ~6x aiokafka's table
    # loop, which was ~1.5% of a results-heavy Kafka job.
    return kernels.crc32c(data)


class FramedBatch:
    """A closed Kafka record batch (format v2) of ``count`` pre-encoded records, shaped like aiokafka's
    ``BatchBuilder`` as far as its producer reads one. ``buffer`` holds room for the 61-byte header, then
    the records (as `kernels.kafka_record_batches` returns them); the batch fills the header in place.

    The producer state starts as aiokafka's builder starts it (no producer id, epoch -1, sequence 0);
    the header and CRC are written when the producer takes the bytes (``_build``), after it has stamped
    the state of an idempotent or transactional producer.
    """

    __slots__ = ("_buffer", "_count", "_first_timestamp", "_max_timestamp", "_attributes",
                 "_producer_id", "_producer_epoch", "_base_sequence", "_built")

    def __init__(self, buffer: bytearray, count: int, first_timestamp: int, max_timestamp: int,
                 transactional: bool = False) -> None:
        if count < 1:
            raise ValueError(f"a record batch holds at least one record, got count={count}")
        if len(buffer) <= _HEADER.size:
            raise ValueError(f"a record batch of {count} records needs more than {len(buffer)} bytes")
        self._buffer = buffer
        self._count = count
        self._first_timestamp = first_timestamp
        self._max_timestamp = max_timestamp
        self._attributes = _TRANSACTIONAL if transactional else 0
        self._producer_id, self._producer_epoch, self._base_sequence = -1, -1, 0
        self._built = False

    def append(self, **_: Any) -> None:
        return None  # closed: the producer's send() starts a batch of its own

    def close(self) -> None:
        pass

    def closed(self) -> bool:
        return True

    def record_count(self) -> int:
        return self._count

    def size(self) -> int:
        return len(self._buffer)

    def _set_producer_state(self, producer_id: int, producer_epoch: int, base_sequence: int) -> None:
        self._producer_id, self._producer_epoch, self._base_sequence = producer_id, producer_epoch, base_sequence
        self._built = False

    def _build(self) -> bytearray:
        if not self._built:
            buffer = self._buffer
            _HEADER.pack_into(
                buffer, 0,
                0,  # base offset: the broker assigns offsets
                len(buffer) - 12,  # bytes after the length field
                -1,  # partition leader epoch: set by the broker
                _MAGIC,
                0,  # CRC, below
                self._attributes,
                self._count - 1,  # last offset delta
                self._first_timestamp,
                self._max_timestamp,
                self._producer_id,
                self._producer_epoch,
                self._base_sequence,
                self._count,
            )
            with memoryview(buffer) as view:
                struct.pack_into(">I", buffer, _CRC_AT, _crc32c(view[_ATTRIBUTES_AT:]))
            self._built = True
        return self._buffer


def framing_supported() -> bool:
    """Whether the installed aiokafka reads the batches ``send_batch`` takes through the names
    `FramedBatch` provides (its ``MessageBatch`` and ``BatchBuilder`` as of aiokafka 0.11-0.14)."""
    try:
        from aiokafka.producer.message_accumulator import BatchBuilder, MessageBatch
    except ImportError:
        return False
    builder_names = ("append", "close", "closed", "record_count", "size", "_set_producer_state", "_build")
    batch_names = ("get_data_buffer", "set_producer_state", "record_count", "is_empty")
    return all(hasattr(BatchBuilder, name) for name in builder_names) and all(
        hasattr(MessageBatch, name) for name in batch_names)


def values_buffer(values: list[bytes]) -> tuple[bytes, np.ndarray]:
    """``values`` as one buffer and the int64 offsets (``len(values) + 1``) of each value in it."""
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    if values:
        np.cumsum(np.fromiter(map(len, values), dtype=np.int64, count=len(values)), out=offsets[1:])
    return b"".join(values), offsets


def framed_batches(buffer: bytes, offsets: np.ndarray, timestamps: np.ndarray, limit: int,
                   transactional: bool = False, rows: np.ndarray | None = None,
                   keys: tuple[bytes, np.ndarray] | None = None) -> list[FramedBatch]:
    """The values ``buffer[offsets[i]:offsets[i + 1]]`` (timestamps in ms, >= 0) as record batches of at
    most ``limit`` bytes each (a value bigger than that gets a batch of its own): those of ``rows`` in
    that order (default: all), keyed by ``keys`` (a `values_buffer` of one key per value) or with null
    keys."""
    if rows is None:
        rows = np.arange(len(timestamps), dtype=np.int64)
    if not len(rows):
        return []
    key_buffer, key_offsets = keys if keys is not None else (None, None)
    batches, bounds = kernels.kafka_record_batches(buffer, offsets, timestamps, limit, rows, key_buffer, key_offsets)
    row_timestamps = timestamps[rows]
    firsts = row_timestamps[bounds[:-1]].tolist()
    maxima = np.maximum.reduceat(row_timestamps, bounds[:-1]).tolist()
    counts = np.diff(bounds).tolist()
    return [FramedBatch(batch, count, first, maximum, transactional)
            for batch, count, first, maximum in zip(batches, counts, firsts, maxima)]


def framed_json_batches(names: list[bytes], columns: list[np.ndarray], timestamps: np.ndarray, limit: int,
                        transactional: bool = False, rows: np.ndarray | None = None,
                        keys: tuple[bytes, np.ndarray] | None = None) -> list[FramedBatch] | None:
    """`framed_batches` of the JSON objects ``{name: column[i], ...}`` (``names`` JSON-encoded, columns as
    `kernels.json_object_rows` takes them), built in one kernel call that encodes each row straight into
    its batch: the same bytes and batches as encoding the values first. ``None`` when a value of an
    object column among ``rows`` is not one the kernel encodes (the caller encodes those records itself)."""
    if rows is not None and not len(rows):
        return []
    key_buffer, key_offsets = keys if keys is not None else (None, None)
    framed = kernels.kafka_json_record_batches(names, columns, timestamps, limit, rows, key_buffer, key_offsets)
    if framed is None:
        return None
    batches, bounds, firsts, maxima = framed
    counts = np.diff(bounds).tolist()
    return [FramedBatch(batch, count, first, maximum, transactional)
            for batch, count, first, maximum in zip(batches, counts, firsts.tolist(), maxima.tolist())]
