"""Whole Kafka record batches for the producer, built from a batch's encoded values in one kernel call.

A sink writing hundreds of thousands of small messages per second spends most of its time in the
producer's per-message append (a Python call, a size check and a varint encoding for each message).
`framed_batches` instead encodes every record of a micro-batch with the `kafka_record_batches` kernel
(message format v2, no compression, null keys, no headers) and wraps each records section in a
`FramedBatch`, which `AIOKafkaProducer.send_batch` accepts in place of its own ``BatchBuilder``: the
producer reads a batch only through ``record_count``, ``closed``, ``size``, ``append`` (refused: the batch
is closed), ``_set_producer_state`` (idempotent and transactional producers stamp their producer id,
epoch and sequence) and ``_build`` (the bytes of the batch). The bytes are exactly those aiokafka's own
builder writes for the same records (tests compare them, CRC included). `framing_supported` checks that
the installed aiokafka still reads batches through those names; the sink appends message by message
otherwise.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from engine import kernels

__all__ = ["FramedBatch", "framed_batches", "framing_supported", "values_buffer"]

# baseOffset, batchLength, partitionLeaderEpoch, magic, crc, attributes, lastOffsetDelta, firstTimestamp,
# maxTimestamp, producerId, producerEpoch, baseSequence, record count (KIP-98's RecordBatch)
_HEADER = struct.Struct(">qiibIhiqqqhii")
_CRC_AT = 17  # the CRC covers everything from the attributes (offset 21) on
_ATTRIBUTES_AT = 21
_TRANSACTIONAL = 0x10  # attributes bit 4
_MAGIC = 2


def _crc32c(data: bytes | bytearray | memoryview) -> int:
    from aiokafka.record.util import calc_crc32c

    return calc_crc32c(data)


class FramedBatch:
    """A closed Kafka record batch (format v2) of ``count`` pre-encoded records (``records``: the records
    section), shaped like aiokafka's ``BatchBuilder`` as far as its producer reads one.

    The producer state starts as aiokafka's builder starts it (no producer id, epoch -1, sequence 0);
    the header and CRC are written when the producer takes the bytes (``_build``), after it has stamped
    the state of an idempotent or transactional producer.
    """

    __slots__ = ("_records", "_count", "_first_timestamp", "_max_timestamp", "_attributes",
                 "_producer_id", "_producer_epoch", "_base_sequence", "_buffer")

    def __init__(self, records: bytes, count: int, first_timestamp: int, max_timestamp: int,
                 transactional: bool = False) -> None:
        if count < 1:
            raise ValueError(f"a record batch holds at least one record, got count={count}")
        self._records = records
        self._count = count
        self._first_timestamp = first_timestamp
        self._max_timestamp = max_timestamp
        self._attributes = _TRANSACTIONAL if transactional else 0
        self._producer_id, self._producer_epoch, self._base_sequence = -1, -1, 0
        self._buffer: bytes | None = None

    def append(self, **_: Any) -> None:
        return None  # closed: the producer's send() starts a batch of its own

    def close(self) -> None:
        pass

    def closed(self) -> bool:
        return True

    def record_count(self) -> int:
        return self._count

    def size(self) -> int:
        return _HEADER.size + len(self._records)

    def _set_producer_state(self, producer_id: int, producer_epoch: int, base_sequence: int) -> None:
        self._producer_id, self._producer_epoch, self._base_sequence = producer_id, producer_epoch, base_sequence
        self._buffer = None

    def _build(self) -> bytes:
        if self._buffer is None:
            buffer = bytearray(_HEADER.size + len(self._records))
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
            buffer[_HEADER.size:] = self._records
            struct.pack_into(">I", buffer, _CRC_AT, _crc32c(memoryview(buffer)[_ATTRIBUTES_AT:]))
            self._buffer = bytes(buffer)
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
                   transactional: bool = False) -> list[FramedBatch]:
    """The values ``buffer[offsets[i]:offsets[i + 1]]`` (timestamps in ms, >= 0) as record batches of at
    most ``limit`` bytes each (a value bigger than that gets a batch of its own), in order."""
    if not len(timestamps):
        return []
    sections, bounds = kernels.kafka_record_batches(buffer, offsets, timestamps, limit)
    firsts = timestamps[bounds[:-1]].tolist()
    maxima = np.maximum.reduceat(timestamps, bounds[:-1]).tolist()
    counts = np.diff(bounds).tolist()
    return [FramedBatch(section, count, first, maximum, transactional)
            for section, count, first, maximum in zip(sections, counts, firsts, maxima)]
