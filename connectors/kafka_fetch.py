"""What `KafkaSource` holds between a fetch and a micro-batch: consumed records as columns.

aiokafka hands out one Python object per record. Held until a whole micro-batch (10,000 records) has
been fetched, they outlive young garbage collections, get promoted and are scanned again and again:
on the Kafka benchmark that was ~0.33 s of collector time per 1M messages, a fifth of the job. So the
source polls in slices of at most `POLL_SLICE` records and gathers each slice at once into columns
(offsets, timestamps, values, keys, headers; values and keys are bytes, which the collector does not
track): the record objects die young and a micro-batch is assembled from the columns.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

from engine.kernels import gather_attributes

__all__ = ["FetchBuffer", "FetchedRecords", "KafkaMessage", "POLL_SLICE"]

# Records per `getmany` call. CPython starts a young collection once the container objects allocated
# and not yet freed exceed 700 (its default gen0 threshold): a slice's records, gathered and dropped
# before that, never survive one.
POLL_SLICE = 500

_OBJECTS = ("value", "key", "headers")  # what `FetchBuffer` keeps of each record besides offset and timestamp
_RAW = object()  # `FetchedRecords.message`: the record's own key or value


class KafkaMessage(msgspec.Struct, frozen=True):
    """A consumed message with its metadata (records of a source built with ``metadata=True``)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: Any
    value: Any
    headers: tuple = ()


class FetchedRecords:
    """Consecutive records of one partition, in ascending offset order, as columns.

    ``offsets`` and ``timestamps`` are int64 arrays; ``values``, ``keys`` and ``headers`` lists, one
    item per record, as the consumer returned them.
    """

    __slots__ = ("topic", "partition", "offsets", "timestamps", "values", "keys", "headers")

    def __init__(self, topic: str, partition: int, offsets: np.ndarray, timestamps: np.ndarray,
                 values: list, keys: list, headers: list) -> None:
        self.topic, self.partition = topic, partition
        self.offsets, self.timestamps = offsets, timestamps
        self.values, self.keys, self.headers = values, keys, headers

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def first_offset(self) -> int:
        return int(self.offsets[0])

    @property
    def last_offset(self) -> int:
        return int(self.offsets[-1])

    def from_offset(self, offset: int) -> FetchedRecords:
        """The records at ``offset`` and after."""
        return self._rows(int(np.searchsorted(self.offsets, offset, side="left")), len(self))

    def below_offset(self, offset: int) -> FetchedRecords:
        """The records before ``offset``."""
        return self._rows(0, int(np.searchsorted(self.offsets, offset, side="left")))

    def _rows(self, start: int, stop: int) -> FetchedRecords:
        if start == 0 and stop == len(self):
            return self
        return FetchedRecords(self.topic, self.partition, self.offsets[start:stop], self.timestamps[start:stop],
                              self.values[start:stop], self.keys[start:stop], self.headers[start:stop])

    def message(self, i: int, key: Any = _RAW, value: Any = _RAW) -> KafkaMessage:
        """Record ``i`` as a `KafkaMessage`, with its raw key and value unless ``key``/``value`` are given."""
        return KafkaMessage(
            self.topic, self.partition, int(self.offsets[i]), int(self.timestamps[i]),
            self.keys[i] if key is _RAW else key, self.values[i] if value is _RAW else value,
            tuple(self.headers[i] or ()),
        )


class _PartitionColumns:
    """One partition's records so far: int64 pieces (one per slice) and object lists appended to."""

    __slots__ = ("offsets", "timestamps", "values", "keys", "headers", "count")

    def __init__(self) -> None:
        self.offsets: list[np.ndarray] = []
        self.timestamps: list[np.ndarray] = []
        self.values: list = []
        self.keys: list = []
        self.headers: list = []
        self.count = 0

    def drop_from(self, offset: int) -> None:
        """Drop the records at ``offset`` and after."""
        kept = self.count
        while self.offsets and self.offsets[-1][0] >= offset:
            kept -= len(self.offsets.pop())
            self.timestamps.pop()
        if self.offsets and self.offsets[-1][-1] >= offset:
            cut = int(np.searchsorted(self.offsets[-1], offset, side="left"))
            kept -= len(self.offsets[-1]) - cut
            self.offsets[-1], self.timestamps[-1] = self.offsets[-1][:cut], self.timestamps[-1][:cut]
        del self.values[kept:], self.keys[kept:], self.headers[kept:]
        self.count = kept

    def last_offset(self) -> int:
        return int(self.offsets[-1][-1]) if self.count else -1


class FetchBuffer:
    """The records of one micro-batch as slices arrive from ``getmany``, per topic partition.

    `add` gathers a slice of one partition into columns (the consumer's record objects can be dropped
    right after); `records` hands out each partition's columns. When a slice starts at or before an
    offset already held (the consumer went back, e.g. reset to the group's committed offset), the held
    records from that offset on are dropped: the consumer returns them again.
    """

    def __init__(self) -> None:
        self._partitions: dict[Any, _PartitionColumns] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def add(self, tp: Any, messages: list) -> None:
        if not messages:
            return
        columns = self._partitions.get(tp)
        if columns is None:
            columns = self._partitions[tp] = _PartitionColumns()
        first, last, n = messages[0].offset, messages[-1].offset, len(messages)
        if columns.count and columns.last_offset() >= first:
            self._count -= columns.count
            columns.drop_from(first)
            self._count += columns.count
        objects = (columns.values, columns.keys, columns.headers)
        if last - first == n - 1:
            # A partition's offsets strictly increase, so these are first..last: no need to read them
            # (a compacted topic or transaction markers leave gaps, and then they are read).
            (timestamps,) = gather_attributes(messages, ("timestamp",), _OBJECTS, append_to=objects)
            offsets = np.arange(first, last + 1, dtype=np.int64)
        else:
            offsets, timestamps = gather_attributes(messages, ("offset", "timestamp"), _OBJECTS, append_to=objects)
        columns.offsets.append(offsets)
        columns.timestamps.append(timestamps)
        columns.count += n
        self._count += n

    def records(self) -> dict[Any, FetchedRecords]:
        """Each partition's records (partitions with none left out), in the order partitions first came."""
        out = {}
        for tp, columns in self._partitions.items():
            if not columns.count:
                continue
            offsets, timestamps = columns.offsets, columns.timestamps
            out[tp] = FetchedRecords(
                tp.topic, tp.partition,
                offsets[0] if len(offsets) == 1 else np.concatenate(offsets),
                timestamps[0] if len(timestamps) == 1 else np.concatenate(timestamps),
                columns.values, columns.keys, columns.headers,
            )
        return out
