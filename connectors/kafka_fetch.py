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


class FetchBuffer:
    """The records of one micro-batch as slices arrive from ``getmany``, per topic partition.

    `add` gathers a slice of one partition into columns (the consumer's record objects can be dropped
    right after); `records` joins each partition's slices. When a slice starts at or before an offset
    already held (the consumer went back, e.g. reset to the group's committed offset), the held records
    from that offset on are dropped: the consumer returns them again.
    """

    def __init__(self) -> None:
        self._slices: dict[Any, list[tuple]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def add(self, tp: Any, messages: list) -> None:
        if not messages:
            return
        columns = gather_attributes(messages, ("offset", "timestamp"), ("value", "key", "headers"))
        slices = self._slices.setdefault(tp, [])
        first = columns[0][0]
        while slices and slices[-1][0][0] >= first:  # a whole slice at or past where the consumer went back
            self._count -= len(slices.pop()[0])
        if slices and slices[-1][0][-1] >= first:
            cut = int(np.searchsorted(slices[-1][0], first, side="left"))
            self._count -= len(slices[-1][0]) - cut
            slices[-1] = tuple(column[:cut] for column in slices[-1])
        slices.append(columns)
        self._count += len(messages)

    def records(self) -> dict[Any, FetchedRecords]:
        """Each partition's records (partitions with none left out), in the order partitions first came."""
        out = {}
        for tp, slices in self._slices.items():
            if not slices:
                continue
            if len(slices) == 1:
                offsets, timestamps, values, keys, headers = slices[0]
            else:
                offsets = np.concatenate([s[0] for s in slices])
                timestamps = np.concatenate([s[1] for s in slices])
                values, keys, headers = [], [], []
                for s in slices:
                    values += s[2]
                    keys += s[3]
                    headers += s[4]
            out[tp] = FetchedRecords(tp.topic, tp.partition, offsets, timestamps, values, keys, headers)
        return out
