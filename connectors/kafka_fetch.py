"""What `KafkaSource` holds between a fetch and a micro-batch: consumed records as columns.

aiokafka hands out one Python object per record. Held until a whole micro-batch (10,000 records) has
been fetched, they outlive young garbage collections, get promoted and are scanned again and again:
on the Kafka benchmark that was ~0.33 s of collector time per 1M messages, a fifth of the job. So the
source polls in slices of at most `POLL_SLICE` records and gathers each slice at once into columns
(offsets, timestamps, values, keys, headers; values and keys are bytes, which the collector does not
track): the record objects die young and a micro-batch is assembled from the columns. The records
are aiokafka's own, not the ``ConsumerRecord`` wrappers it builds around them in Python, which were a
third of the benchmark job (`unwrap_fetched`).

When the job reads only some fields of JSON values (`connectors.json_batches.JsonColumnDecoder`), each
slice's values are decoded into those fields' columns as the slice arrives, and a slice decoded whole
keeps nothing else: no values, keys or headers (those are kept for dead letters, and a value that
decoded cannot become one). A slice that does not decode whole keeps its records as they are, for the
source to decode one by one. So a partition's records in one poll come as runs: consecutive slices
decoded alike.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import msgspec
import numpy as np

from engine.kernels import gather_attributes

__all__ = ["FetchBuffer", "FetchedRecords", "KafkaMessage", "POLL_SLICE", "unwrap_fetched"]

# Records per `getmany` call. CPython starts a young collection once the container objects allocated
# and not yet freed exceed 700 (its default gen0 threshold): a slice's records, gathered and dropped
# before that, never survive one. An unwrapped record (`unwrap_fetched`) is two such objects, aiokafka's
# record and its headers list: 300 records are 600.
POLL_SLICE = 300

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

    ``offsets`` and ``timestamps`` are int64 arrays. Records as the consumer returned them have
    ``values``, ``keys`` and ``headers`` lists, one item per record, and ``columns`` None; records whose
    values were decoded into the projected fields have ``columns`` (field -> array, see
    `JsonColumnDecoder.columns`) and no lists.
    """

    __slots__ = ("topic", "partition", "offsets", "timestamps", "values", "keys", "headers", "columns")

    def __init__(self, topic: str, partition: int, offsets: np.ndarray, timestamps: np.ndarray,
                 values: list | None, keys: list | None, headers: list | None,
                 columns: dict[str, np.ndarray] | None = None) -> None:
        self.topic, self.partition = topic, partition
        self.offsets, self.timestamps = offsets, timestamps
        self.values, self.keys, self.headers = values, keys, headers
        self.columns = columns

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
        if self.columns is not None:
            return FetchedRecords(self.topic, self.partition, self.offsets[start:stop], self.timestamps[start:stop],
                                  None, None, None, {name: column[start:stop] for name, column in self.columns.items()})
        return FetchedRecords(self.topic, self.partition, self.offsets[start:stop], self.timestamps[start:stop],
                              self.values[start:stop], self.keys[start:stop], self.headers[start:stop])

    def message(self, i: int, key: Any = _RAW, value: Any = _RAW) -> KafkaMessage:
        """Record ``i`` as a `KafkaMessage`, with its raw key and value unless ``key``/``value`` are given
        (records as the consumer returned them only)."""
        if self.columns is not None:
            raise ValueError("decoded records keep no message (their values decoded; none is a dead letter)")
        return KafkaMessage(
            self.topic, self.partition, int(self.offsets[i]), int(self.timestamps[i]),
            self.keys[i] if key is _RAW else key, self.values[i] if value is _RAW else value,
            tuple(self.headers[i] or ()),
        )


class _Run:
    """Consecutive slices of one partition kept alike: int64 pieces (one per slice) and either the
    records' object lists (``parts`` None) or each slice's decoded columns (``parts``, one per slice)."""

    __slots__ = ("offsets", "timestamps", "parts", "values", "keys", "headers", "count")

    def __init__(self, decoded: bool) -> None:
        self.offsets: list[np.ndarray] = []
        self.timestamps: list[np.ndarray] = []
        self.parts: list | None = [] if decoded else None
        self.values: list | None = None if decoded else []
        self.keys: list | None = None if decoded else []
        self.headers: list | None = None if decoded else []
        self.count = 0

    def drop_from(self, offset: int) -> int:
        """Drop the records at ``offset`` and after; return how many."""
        kept = self.count
        while self.offsets and self.offsets[-1][0] >= offset:
            kept -= len(self.offsets.pop())
            self.timestamps.pop()
            if self.parts is not None:
                self.parts.pop()
        if self.offsets and self.offsets[-1][-1] >= offset:
            cut = int(np.searchsorted(self.offsets[-1], offset, side="left"))
            kept -= len(self.offsets[-1]) - cut
            self.offsets[-1], self.timestamps[-1] = self.offsets[-1][:cut], self.timestamps[-1][:cut]
            if self.parts is not None:
                self.parts[-1] = _cut_part(self.parts[-1], cut)
        if self.parts is None:
            del self.values[kept:], self.keys[kept:], self.headers[kept:]
        dropped, self.count = self.count - kept, kept
        return dropped

    def first_offset(self) -> int:
        return int(self.offsets[0][0])

    def last_offset(self) -> int:
        return int(self.offsets[-1][-1])


def _cut_part(part: list, stop: int) -> list:
    """A slice's decoded columns (`JsonColumnDecoder.scan`) cut to the first ``stop`` rows."""
    return [tuple(a[:stop] for a in column) if isinstance(column, tuple) else column[:stop] for column in part]


class FetchBuffer:
    """The records of one micro-batch as slices arrive from ``getmany``, per topic partition.

    `add` gathers a slice of one partition into columns (the consumer's record objects can be dropped
    right after), decoding its values with ``decoder`` (a `JsonColumnDecoder`) when given; `records`
    hands out each partition's runs. When a slice starts at or before an offset already held (the
    consumer went back, e.g. reset to the group's committed offset), the held records from that offset
    on are dropped: the consumer returns them again.
    """

    def __init__(self, decoder: Any = None) -> None:
        self._decoder = decoder
        self._partitions: dict[Any, list[_Run]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def add(self, tp: Any, messages: list) -> None:
        if not messages:
            return
        runs = self._partitions.get(tp)
        if runs is None:
            runs = self._partitions[tp] = []
        first, last, n = messages[0].offset, messages[-1].offset, len(messages)
        if runs and runs[-1].last_offset() >= first:
            self._drop_from(runs, first)
        # A partition's offsets strictly increase, so a slice spanning n offsets is first..last: no need
        # to read them (a compacted topic or transaction markers leave gaps, and then they are read).
        contiguous = last - first == n - 1
        int_names = ("timestamp",) if contiguous else ("offset", "timestamp")
        parts = None
        if self._decoder is None:
            run = _last_run(runs, decoded=False)
            try:
                ints = gather_attributes(messages, int_names, _OBJECTS, append_to=(run.values, run.keys, run.headers))
            except BaseException:
                if not run.count:  # runs are never empty
                    runs.pop()
                raise
        else:
            *ints, values = gather_attributes(messages, int_names, ("value",))
            parts = self._decoder.scan(values)
            run = _last_run(runs, decoded=parts is not None)
            if parts is None:  # kept as they are, keys and headers too, for decoding one by one
                run.values.extend(values)
                gather_attributes(messages, (), ("key", "headers"), append_to=(run.keys, run.headers))
            else:
                run.parts.append(parts)
        run.offsets.append(ints[0] if not contiguous else np.arange(first, last + 1, dtype=np.int64))
        run.timestamps.append(ints[-1])
        run.count += n
        self._count += n

    def _drop_from(self, runs: list[_Run], offset: int) -> None:
        while runs and runs[-1].first_offset() >= offset:
            self._count -= runs.pop().count
        if runs:  # its first record stays: runs are never empty
            self._count -= runs[-1].drop_from(offset)

    def records(self) -> list[tuple[Any, FetchedRecords]]:
        """Each partition's runs, as ``(topic partition, records)`` in the order partitions first came and
        in offset order within a partition (partitions with no records left out)."""
        out = []
        for tp, runs in self._partitions.items():
            for run in runs:
                if not run.count:
                    continue
                offsets, timestamps = run.offsets, run.timestamps
                columns = self._decoder.columns(run.parts) if run.parts is not None else None
                out.append((tp, FetchedRecords(
                    tp.topic, tp.partition,
                    offsets[0] if len(offsets) == 1 else np.concatenate(offsets),
                    timestamps[0] if len(timestamps) == 1 else np.concatenate(timestamps),
                    run.values, run.keys, run.headers, columns,
                )))
        return out


def _last_run(runs: list[_Run], decoded: bool) -> _Run:
    """The partition's last run if it is kept as ``decoded`` says, else a new one."""
    if not runs or (runs[-1].parts is not None) != decoded:
        runs.append(_Run(decoded))
    return runs[-1]


def unwrap_fetched(consumer: Any) -> None:
    """Make ``consumer`` hand out the records it has fetched so far as aiokafka's own record objects,
    without wrapping each in a ``ConsumerRecord``.

    aiokafka reads a fetched record batch into record objects (compiled, with ``offset``, ``timestamp``,
    ``key``, ``value`` and ``headers``, all `FetchBuffer` reads), then wraps each in a ``ConsumerRecord``
    dataclass in Python; on the Kafka benchmark the wrapping is about a third of the whole job. The
    wrapper is built by the ``_consumer_record(tp, record)`` method of the ``PartitionRecords`` holding
    a fetched partition's batches, looked up per record: each one not yet handed out gets the identity
    instead. Records of partitions paused, revoked or sought elsewhere, transaction markers and aborted
    transactions are still handled by aiokafka exactly as before.

    This leans on aiokafka internals (the fetcher's ``_records``, ``FetchResult._partition_records``,
    that method's signature), checked once: where they differ, or the consumer was given key or value
    deserializers (which the wrapper applies), records stay wrapped, and `FetchBuffer` reads the same
    attributes from the wrappers. Call it before each ``getmany``: the fetcher buffers new fetches
    between calls.
    """
    if not _unwrapping_supported():
        return
    fetched = getattr(getattr(consumer, "_fetcher", None), "_records", None)
    if not isinstance(fetched, dict):
        return
    for result in fetched.values():
        records = getattr(result, "_partition_records", None)
        if (records is not None and "_consumer_record" not in records.__dict__
                and getattr(records, "_key_deserializer", False) is None
                and getattr(records, "_value_deserializer", False) is None):
            records._consumer_record = _bare_record


def _bare_record(tp: Any, record: Any) -> Any:
    return record


@functools.lru_cache(maxsize=1)
def _unwrapping_supported() -> bool:
    try:
        from aiokafka.consumer.fetcher import PartitionRecords
        init = list(inspect.signature(PartitionRecords.__init__).parameters)
        wrap = list(inspect.signature(PartitionRecords._consumer_record).parameters)
    except (ImportError, AttributeError, TypeError, ValueError):
        return False
    return wrap == ["self", "tp", "record"] and "key_deserializer" in init and "value_deserializer" in init
