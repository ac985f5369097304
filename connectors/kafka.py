"""Kafka connectors on aiokafka: `KafkaSource`, `KafkaSink` and `KafkaDeadLetterSink`.

Delivery guarantees (see SEMANTICS.md, "Checkpoints and recovery"):

* `KafkaSource` records its next offset per partition in every checkpoint and, on restore, seeks to
  those offsets (the checkpoint wins over the consumer group's committed offsets). Offsets are committed
  to the group only after the checkpoint holding them is durable (`notify_checkpoint_complete`), so the
  group's offsets never run ahead of what the job can recover.
* `KafkaSink` is **at-least-once** by default: it flushes at every checkpoint (``pre_commit``), so after a
  crash the records since the last checkpoint are written again. With ``transactional_id`` it writes in
  Kafka transactions committed with the checkpoint (**exactly-once** for ``read_committed`` consumers);
  that needs a broker with transaction support (InitProducerId).

Partition ids: the runtime knows partitions as ints; ``(topic, partition)`` maps to
``topic_index * 2**20 + partition`` where ``topic_index`` is the topic's place in ``topics``.

Scale-out (several worker processes, one job): start every worker with the same ``group_id`` and the
same ``checkpoint_dir`` (a directory all of them can reach) and a distinct ``worker_id``
(``flow.run(checkpoint_dir=..., worker_id=...)`` or ``engine run job.py --checkpoint-dir DIR --worker-id
NAME``). The consumer group spreads the partitions over the workers. Keyed state (windows, sessions,
reduce, joins) is then kept per input partition: one shard per partition number, holding the state of
the keys that arrive on that partition. Each worker checkpoints its shards, the watermark tracker of each
partition and its offsets into ``checkpoint_dir/worker-<id>/``, and commits offsets to the group only
once that checkpoint is durable. When a partition moves (a worker joins, leaves or dies), its new owner
takes the latest checkpoint (of whichever worker) holding the partition, i.e. the one at its furthest
offset: it seeks the partition to that checkpoint's offset and, before processing any of its records,
loads the partition's shard and tracker from the same checkpoint. The checkpoint wins over the group's
committed offset, which can lag (commits fail while the group rebalances, and a revoked worker finishes
and checkpoints the batches it had already read); the committed offset is used only for partitions no
checkpoint holds.
Watermarks are then per worker (the minimum over the partitions it owns); each shard keeps its own.

The co-partitioning rule: because state follows partitions, every record of one key must arrive on
the same partition number of every input topic, i.e. the topics are partitioned by the key the job
keys by (``key_by``), with the same partition count (as Kafka Streams requires for joins). Input keyed
differently must first be repartitioned through a topic keyed as the job keys it (a job that reads it,
and writes it with ``KafkaSink(key=...)``). A single worker (no ``worker_id``) has no such constraint:
it keeps one state per key whatever partition the key arrives on.

Output: `KafkaSink` is at-least-once, so after a worker dies its partitions' results since the last
checkpoint are emitted again (identical values). The JSON-lines file sink commits per process at the
end of the job, so it suits single-worker jobs, not scaled-out ones.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from typing import Any, AsyncIterator, Callable

import msgspec
import numpy as np

from connectors.json_batches import JsonColumnDecoder, decode_lines_exactly
from connectors.kafka_fetch import POLL_SLICE, FetchBuffer, FetchedRecords, KafkaMessage, unwrap_fetched
from connectors.kafka_framing import FramedBatch, framed_batches, framed_json_batches, framing_supported, values_buffer
from engine import kernels
from engine.batch import Batch
from engine.errors import ConnectorError, FlowDefinitionError
from engine.io import Sink, Source, SourceChunk

__all__ = ["KafkaDeadLetterSink", "KafkaMessage", "KafkaSink", "KafkaSource", "partition_id"]

logger = logging.getLogger(__name__)

_PARTITION_SPAN = 2**20  # partitions per topic the id scheme can tell apart


BOOTSTRAP_ENV = "ENGINE_KAFKA_BOOTSTRAP_SERVERS"


def resolve_bootstrap_servers(value: str | list[str] | None, owner: str) -> str | list[str]:
    """``value``, or when it is None the ``ENGINE_KAFKA_BOOTSTRAP_SERVERS`` environment variable (which
    ``engine run --kafka-bootstrap-servers`` sets), so a job script need not hard-code its brokers."""
    if value is None:
        value = os.environ.get(BOOTSTRAP_ENV)
        if not value:
            raise FlowDefinitionError(
                f"{owner} needs bootstrap_servers= (or {BOOTSTRAP_ENV}, or engine run --kafka-bootstrap-servers)"
            )
    return value


def partition_id(topic_index: int, partition: int) -> int:
    """The runtime's int id of partition ``partition`` of the ``topic_index``-th topic."""
    return topic_index * _PARTITION_SPAN + partition


Decoder = Callable[[bytes], Any]


def _decoder(spec: Any, what: str) -> tuple[Decoder | None, msgspec.json.Decoder | None]:
    """A per-message decoder for ``spec`` and, for JSON, the msgspec decoder that decodes a whole batch
    (`connectors.json_batches.decode_lines_exactly`)."""
    if spec is None or spec == "bytes":
        return None, None
    if spec == "json":
        decoder = msgspec.json.Decoder()
        return decoder.decode, decoder
    if isinstance(spec, str) and spec in ("str", "utf-8"):
        return (lambda raw: raw.decode("utf-8")), None
    if isinstance(spec, type) and issubclass(spec, msgspec.Struct):
        decoder = msgspec.json.Decoder(spec)
        return decoder.decode, decoder
    if callable(spec):
        return spec, None
    raise FlowDefinitionError(
        f"KafkaSource {what}= must be 'bytes', 'str', 'json', a msgspec.Struct type or a callable bytes -> "
        f"value, got {spec!r}"
    )


class KafkaSource(Source):
    """Read ``topics`` from Kafka as micro-batches, one partition per chunk.

    ``value``/``key``: how to decode message values/keys ('bytes', 'str', 'json', a msgspec Struct type, or a
    callable). A message that cannot be decoded goes to the source step's dead letters with its topic,
    partition and offset; the job continues. Records are the decoded values, or `KafkaMessage` objects
    with ``metadata=True``. Event time defaults to the Kafka record timestamp (``flow.source(src)`` without
    ``timestamp=``). JSON values of a batch are decoded in one call; when the job reads only some fields by
    name (`project`), just those are decoded, into columns, and a batch with a value that does not fit is
    decoded whole (so its bad messages reach the dead letters exactly as without projection).

    A micro-batch holds up to ``batch_size`` records of one partition. They are fetched with ``getmany``
    in slices of 300 records, each gathered into columns at once (`connectors.kafka_fetch`; with a
    projection, its values decoded into the fields' columns right away; aiokafka's records are read
    without their ``ConsumerRecord`` wrappers, see `unwrap_fetched`): the first slice waits up to
    ``poll_timeout_ms`` for records, the next ones take only what is already fetched.

    ``start``: where a partition with no checkpointed offset begins: 'earliest', 'latest', or
    'committed' (the group's committed offset, else earliest). ``bounded=True`` reads each partition up to
    the high-water mark seen when it was first fetched, then ends (the job then fires every window).

    With ``group_id`` the source joins that consumer group: workers running the same job share the
    partitions, and partitions moving between workers are reported to the runtime (assigned partitions
    get a watermark tracker, revoked ones stop holding the watermark back). Without ``group_id`` it reads
    every partition of the topics itself.
    """

    provides_timestamps = True
    default_batch_size = 10_000

    def __init__(
        self,
        topics: str | list[str],
        bootstrap_servers: str | list[str] | None = None,
        *,
        group_id: str | None = None,
        value: Any = "json",
        key: Any = "bytes",
        metadata: bool = False,
        start: str = "earliest",
        bounded: bool = False,
        batch_size: int = 10_000,
        poll_timeout_ms: int = 100,
        consumer_options: dict[str, Any] | None = None,
        contract: Any = None,
        wire_format: bool = False,
        registry: Any = None,
    ) -> None:
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        if not self.topics or not all(isinstance(t, str) and t for t in self.topics):
            raise FlowDefinitionError(f"KafkaSource needs one or more topic names, got {topics!r}")
        if start not in ("earliest", "latest", "committed"):
            raise FlowDefinitionError(f"KafkaSource start= must be 'earliest', 'latest' or 'committed', got {start!r}")
        if start == "committed" and group_id is None:
            raise FlowDefinitionError("KafkaSource start='committed' needs a group_id")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise FlowDefinitionError(f"KafkaSource batch_size must be a positive int, got {batch_size!r}")
        self.bootstrap_servers = resolve_bootstrap_servers(bootstrap_servers, type(self).__name__)
        self.group_id = group_id
        self.value_spec, self.key_spec = value, key
        self._decode_value, self._decode_values = _decoder(value, "value")
        self._columns_decoder: JsonColumnDecoder | None = None  # set by `project`
        self._decode_key, _ = _decoder(key, "key")
        self.metadata = metadata
        # With a data contract, values are decoded and validated per batch by the contract's compiled
        # validator (Confluent framing with wire_format=True); violations go to the dead letters.
        self._contract_check = None
        if contract is not None:
            from engine.contracts.streams import BatchValidator

            self._contract_check = BatchValidator(
                contract, step=f"KafkaSource({', '.join(self.topics)})", output="dict",
                wire_format=wire_format, registry=registry,
            )
        self.start = start
        self.bounded = bounded
        self.batch_size = batch_size
        self._run_batch_size = batch_size
        self.poll_timeout_ms = poll_timeout_ms
        self.consumer_options = dict(consumer_options or {})
        self._topic_index = {t: i for i, t in enumerate(self.topics)}
        self._consumer = None
        self._positions: dict[int, int] = {}  # partition id -> next offset to read
        self._seek_to: dict[int, int] = {}  # from a checkpoint; wins over the group's offsets
        self._bounds: dict[int, int] = {}  # bounded mode: partition id -> stop offset
        self._assigned: set[int] = set()
        self._revoked: list[int] = []
        self._announce: list[int] = []  # newly assigned partitions the runtime has not heard of yet
        self._listener_error: BaseException | None = None  # from a rebalance callback, raised by `read`
        self._rebalances = 0
        self._publications = 0  # assignments published by `_on_assigned` (each seeks its partitions)
        self._fetched_unpublished: dict[Any, int] = {}  # first offset `getmany` returned, not yet handed out

    def project(self, fields: dict[str, str] | None) -> None:
        """Decode only ``fields`` of JSON values, into columns, when the job reads nothing else (see
        `engine.io.Source.project`); not with ``metadata=True``, a contract, or a non-JSON ``value=``."""
        plain_json = self.value_spec == "json" and not self.metadata and self._contract_check is None
        self._columns_decoder = JsonColumnDecoder(fields) if fields and plain_json else None

    def describe(self) -> str:
        mode = "bounded" if self.bounded else "unbounded"
        group = f", group {self.group_id!r}" if self.group_id else ""
        return f"KafkaSource({', '.join(self.topics)}{group}, {mode})"

    def partitions(self) -> list[int]:
        """Known before the run only without a group: then every partition of the topics is read."""
        return sorted(self._assigned)

    def pid(self, topic: str, partition: int) -> int:
        return partition_id(self._topic_index[topic], partition)

    def _tp(self, pid: int):
        from aiokafka import TopicPartition

        return TopicPartition(self.topics[pid // _PARTITION_SPAN], pid % _PARTITION_SPAN)

    # ---- lifecycle ----

    async def open(self, batch_size: int | None = None) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.errors import KafkaError

        self._run_batch_size = batch_size or self.batch_size
        # a new run starts from the sought positions (or the start rule), not from a previous run's
        self._positions, self._bounds, self._assigned, self._announce, self._revoked = {}, {}, set(), [], []
        self._listener_error = None
        self._rebalances = 0  # revocation callbacks so far (each starts a rebalance)
        self._publications = 0
        self._fetched_unpublished = {}
        options = {
            "bootstrap_servers": self.bootstrap_servers,
            "group_id": self.group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "latest" if self.start == "latest" else "earliest",
            # aiokafka's max_partition_fetch_bytes (1 MiB) is kept: getmany hands out one partition's
            # fetched records before the next one's, so bigger fetches read the partitions more unevenly
            # (the watermark, the minimum over partitions, lags; more windows stay open; results come in
            # bursts). 4 MiB measured ~5% slower end to end on the Kafka benchmark.
            **self.consumer_options,
        }
        self._consumer = self._new_consumer(AIOKafkaConsumer, options)
        try:
            await self._consumer.start()
            if self.group_id is None:
                tps = []
                for topic in self.topics:
                    partitions = self._consumer.partitions_for_topic(topic)
                    if partitions is None:
                        partitions = await self._fetch_partitions(topic)
                    tps.extend(self._tp(self.pid(topic, p)) for p in sorted(partitions))
                self._consumer.assign(tps)
                await self._on_assigned(tps)
            else:
                self._consumer.subscribe(self.topics, listener=_listener(self))
        except KafkaError as exc:
            await self.close()
            raise ConnectorError(f"{self.describe()}: cannot connect to {self.bootstrap_servers}: {exc}") from exc
        except BaseException:
            await self.close()
            raise

    def _new_consumer(self, consumer_class: type, options: dict[str, Any]) -> Any:
        """The consumer `open` starts (a seam: tests put a scripted consumer here)."""
        return consumer_class(**options)

    async def _fetch_partitions(self, topic: str) -> set[int]:
        for _ in range(50):
            await self._consumer._client.force_metadata_update()  # aiokafka has no public call for this
            partitions = self._consumer.partitions_for_topic(topic)
            if partitions:
                return partitions
            await asyncio.sleep(0.1)
        raise ConnectorError(f"{self.describe()}: topic {topic!r} does not exist")

    async def _on_assigned(self, tps) -> None:
        """Partitions assigned (by the group, or all of them without one): settle where each starts, then
        hand them to `read` in one step.

        With a group this runs in aiokafka's coordinator task, concurrently with `read`, and aiokafka
        fetches the new partitions before it calls back. So every start offset is settled first (the
        awaits), and only then are the partitions sought and published (positions, ``_assigned``,
        ``_announce``) with no await in between: `read` never announces a partition at a stale offset
        (e.g. where it stood before a revocation) nor hands out records of a partition not announced yet
        (it rewinds those, see `read`). Where a partition starts: at a restored checkpoint's offset (a
        single worker); in scale-out runs at the latest checkpoint holding its state
        (`resume_positions`); a single worker that had the partition before continues where it was;
        otherwise at the group's committed offset, else by the ``start`` rule.
        """
        new = [(tp, self.pid(tp.topic, tp.partition)) for tp in tps]
        resume: dict[int, Any] = {}
        if self.resume_positions is not None and new:
            resume = await self.resume_positions([pid for _, pid in new])
        starts: dict[int, int] = {}
        for tp, pid in new:
            if pid in self._seek_to:  # restored from a checkpoint: once, at the first assignment
                starts[pid] = self._seek_to.pop(pid)
            elif pid in resume:
                starts[pid] = int(resume[pid])
            elif not self.scale_out and pid in self._positions:
                # Revoked and assigned back (an eager rebalance): this worker kept the partition's state,
                # so it continues where it was, not at the group's (older) committed offset.
                starts[pid] = self._positions[pid]
            else:
                if self.start == "earliest" and self.group_id is not None:
                    committed = await self._consumer.committed(tp)
                    if committed is None:
                        await self._consumer.seek_to_beginning(tp)
                # The consumer's position is past records `getmany` already returned for this partition
                # if `read` has not handed them out (it may be paused at a yield): start at the first.
                position = await self._consumer.position(tp)
                starts[pid] = min(position, self._fetched_unpublished.get(tp, position))
        for tp, pid in new:
            self._consumer.seek(tp, starts[pid])
            self._fetched_unpublished.pop(tp, None)
            self._positions[pid] = starts[pid]
            self._assigned.add(pid)
            self._announce.append(pid)
            logger.debug("%s: partition %s assigned at offset %s%s", self.describe(), pid, starts[pid],
                         " (checkpoint)" if pid in resume else "")
        if new:
            self._publications += 1  # `read` drops what it fetched before these seeks

    def _on_revoked(self, tps) -> None:
        self._rebalances += 1
        for tp in tps:
            self._fetched_unpublished.pop(tp, None)
            pid = self.pid(tp.topic, tp.partition)
            if pid in self._assigned:
                self._assigned.discard(pid)
                self._revoked.append(pid)
        logger.debug("%s: partitions %s revoked", self.describe(), sorted(self.pid(tp.topic, tp.partition) for tp in tps))

    async def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()

    # ---- reading ----

    async def read(self) -> AsyncIterator[SourceChunk]:
        consumer = self._consumer
        if consumer is None:
            raise ConnectorError(f"{self.describe()}: read() before open()")
        while True:
            # Announce assigned partitions before any data: an assigned partition holds the watermark
            # back from the start (until it produces or goes idle), as in Flink; otherwise records of a
            # partition fetched later would be judged against a watermark its peers alone advanced.
            # (Assignments are settled in `_on_assigned`, concurrently; announce after the poll, before data.)
            data, rebalances, publications = await self._poll(consumer)
            if self._listener_error is not None:
                error, self._listener_error = self._listener_error, None
                raise ConnectorError(f"{self.describe()}: handling a partition assignment failed: "
                                     f"{type(error).__name__}: {error}") from error
            # Revocations first: with eager rebalancing a partition can be revoked and assigned again in
            # one poll; the runtime must drop its state, then load it again where the partition resumes.
            revoked, self._revoked = self._revoked, []
            if revoked:
                yield SourceChunk(revoked[0], revoked=revoked)
            # Whenever a rebalance begins while this poll is handed out (a yield waits for the runtime),
            # the rest of it belongs to the previous assignment: announcements and heartbeats would carry
            # the new assignment's positions ahead of the revocation (a checkpoint could then pair a new
            # position with the old state), and records would come from the old fetch. Every partition is
            # revoked (aiokafka rebalances eagerly), and `_on_assigned` seeks and announces again each one
            # it assigns, so dropping the rest loses nothing.
            announce, self._announce = self._announce, []
            for pid in announce:
                if self._rebalances != rebalances:
                    break
                if pid in self._assigned:
                    yield SourceChunk(pid, position=self._positions.get(pid))
            sought = set()  # partitions sought back below (a partition may come as several runs)
            for i, (tp, records) in enumerate(data):
                data[i] = None  # the chunk holds what it needs
                if self._rebalances != rebalances or self._publications != publications:
                    # Also when an assignment was published while this poll was handed out: its records were
                    # fetched before `_on_assigned` sought the partitions (it started them at the first
                    # record not handed out), so the consumer reads them again from there.
                    break
                pid = self.pid(tp.topic, tp.partition)
                if pid not in self._assigned:
                    if tp in consumer.assignment() and tp not in sought:
                        # Assigned, but `_on_assigned` has not settled where it starts yet: read these (and
                        # the partition's later runs) again once it has (it may seek elsewhere; a seek
                        # discards them anyway).
                        sought.add(tp)
                        consumer.seek(tp, records.first_offset)
                        self._fetched_unpublished.pop(tp, None)
                    continue  # otherwise revoked while the fetch was in flight
                if self.bounded:
                    bound = self._bound(tp, pid)
                    if bound is not None:
                        records = records.below_offset(bound)
                    if not records:
                        continue
                expected = self._positions.get(pid)
                if expected is not None and records.first_offset < expected:
                    # The consumer went back (e.g. to the group's committed offset) without a revocation
                    # callback, e.g. after rejoining the group.
                    logger.debug("%s: partition %s went back from offset %s to %s without a revocation",
                                 self.describe(), pid, expected, records.first_offset)
                    if self.scale_out:  # reload the partition's state at that offset, as on a reassignment
                        self._positions[pid] = records.first_offset
                        yield SourceChunk(pid, revoked=[pid])
                        yield SourceChunk(pid, position=records.first_offset)
                    else:  # this worker kept the state: skip what it has already processed
                        records = records.from_offset(expected)
                        if not records:
                            continue
                self._positions[pid] = records.last_offset + 1
                chunk = self._chunk(pid, records)
                records = None
                yield chunk
            if not data:
                for pid in sorted(self._assigned):  # heartbeats let the runtime apply idle_timeout
                    if self._rebalances != rebalances:
                        break
                    yield SourceChunk(pid, position=self._positions.get(pid))
            if self.bounded and self._pause_finished():
                return

    async def _poll(self, consumer) -> tuple[list[tuple[Any, FetchedRecords]], int, int]:
        """Up to one micro-batch of records, as runs per topic partition (`FetchBuffer.records`), with the
        rebalance and publication counts they were fetched under.

        ``getmany`` is called for slices of at most `POLL_SLICE` records (see `connectors.kafka_fetch`),
        the first waiting up to ``poll_timeout_ms``, the next ones taking only what is already fetched.
        Records of partitions not (yet) assigned are noted in ``_fetched_unpublished`` as they arrive.
        When a rebalance or an assignment happens while slicing, the slices before it are dropped (as
        `read` drops the rest of a poll it is handing out then): none was handed out, and every partition
        is revoked and sought again where its records not handed out begin, so the consumer returns them
        again, as it does the slices fetched since.
        """
        buffer = FetchBuffer(self._columns_decoder)
        timeout_ms, counts = self.poll_timeout_ms, None
        while True:
            unwrap_fetched(consumer)
            data = await consumer.getmany(timeout_ms=timeout_ms,
                                          max_records=min(POLL_SLICE, self._run_batch_size - len(buffer)))
            if counts != (self._rebalances, self._publications):
                counts, buffer = (self._rebalances, self._publications), FetchBuffer(self._columns_decoder)
            if not data or self._listener_error is not None:
                break
            for tp, messages in data.items():
                if not messages:
                    continue
                pid = self.pid(tp.topic, tp.partition)
                if pid not in self._assigned:
                    first = messages[0].offset
                    self._fetched_unpublished[tp] = min(first, self._fetched_unpublished.get(tp, first))
                elif self.bounded:
                    self._pause_fetched_to_bound(consumer, tp, pid, messages[-1].offset + 1)
                buffer.add(tp, messages)
            data = messages = None  # the slice's record objects die here
            if len(buffer) >= self._run_batch_size:
                break
            timeout_ms = 0
            # getmany returns at once while records are prefetched, so a micro-batch would be assembled
            # in one step of the event loop, and the I/O sharing the loop would wait for it: above all
            # the producer's round trips, one request in flight at a time. Let the loop turn after every
            # slice: on the Kafka benchmark the sink's final flush went from ~130 to ~15 ms.
            await asyncio.sleep(0)
        return buffer.records(), counts[0], counts[1]

    def _bound(self, tp, pid: int) -> int | None:
        if pid not in self._bounds:
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                return None
            self._bounds[pid] = highwater
        return self._bounds[pid]

    def _pause_fetched_to_bound(self, consumer, tp, pid: int, fetched_to: int) -> None:
        """Pause ``tp`` as soon as its records up to the bound are fetched, before the event loop turns:
        else the fetcher asks for it again at once (see `_pause_finished`, which also resumes it should
        those records be dropped and read again)."""
        bound = self._bound(tp, pid)
        if bound is not None and fetched_to >= bound and tp not in consumer.paused() and tp in consumer.assignment():
            consumer.pause(tp)

    def _pause_finished(self) -> bool:
        """Pause the assigned partitions read up to their bound; return whether all of them are.

        Finished partitions are paused (aiokafka drops what it prefetched of them, all past the bound):
        otherwise the fetcher keeps asking for them, the broker holds such a fetch, with nothing new to
        return, for the consumer's ``fetch_max_wait_ms`` (500 ms by default), and the fetch of the
        partitions still being read waits behind it. (A reassigned partition comes back unpaused, and is
        paused again here.)"""
        if not self._assigned:
            return False
        consumer, done = self._consumer, True
        paused = consumer.paused()
        for pid in self._assigned:
            tp = self._tp(pid)
            bound = self._bound(tp, pid)
            if bound is None or self._positions.get(pid, 0) < bound:
                done = False
                if tp in paused:  # paused when fetched to its bound, but those records were dropped
                    consumer.resume(tp)
            elif tp not in paused and tp in consumer.assignment():
                consumer.pause(tp)
        return done

    def _chunk(self, pid: int, fetched: FetchedRecords) -> SourceChunk:
        timestamps, values = fetched.timestamps, fetched.values
        if fetched.columns is not None:  # decoded as the slices arrived
            return SourceChunk(pid, columns=fetched.columns, position=self._positions[pid], timestamps=timestamps)
        if self._columns_decoder is not None:
            columns = self._columns_decoder.decode(values)
            if columns is not None:
                return SourceChunk(pid, columns=columns, position=self._positions[pid], timestamps=timestamps)
        records, errors, keep = self._decode(fetched)
        if keep is not None:
            timestamps = timestamps[keep]
        if self.metadata:
            kept = range(len(fetched)) if keep is None else keep
            records = [fetched.message(i, key=self._key(fetched.keys[i]), value=value)
                       for i, value in zip(kept, records)]
        return SourceChunk(pid, records=records, errors=errors, position=self._positions[pid], timestamps=timestamps)

    def _key(self, raw: Any) -> Any:
        if self._decode_key is None or raw is None:
            return raw
        try:
            return self._decode_key(raw)
        except Exception:
            return raw

    def _decode(self, fetched: FetchedRecords) -> tuple[list, list, list[int] | None]:
        """Decode the values of ``fetched``; bad ones become ``(raw message, reason)`` errors and are left
        out (``keep`` indexes)."""
        values = fetched.values
        if self._contract_check is not None:
            return self._validate(fetched)
        if self._decode_value is None:
            return values, [], None
        if self._decode_values is not None:  # one C call for the whole batch when it all decodes
            decoded = decode_lines_exactly(self._decode_values, values)
            if decoded is not None:
                return decoded, [], None
        records, errors, keep = [], [], []
        for i, value in enumerate(values):
            try:
                if value is None:
                    raise ValueError("message has no value (tombstone)")
                records.append(self._decode_value(value))
                keep.append(i)
            except Exception as exc:
                raw = fetched.message(i)
                errors.append((raw, f"cannot decode the value of {raw.topic}[{raw.partition}]@{raw.offset}: {exc}"))
        return records, errors, keep

    def _validate(self, fetched: FetchedRecords) -> tuple[list, list, list[int] | None]:
        valid, dead = self._contract_check(fetched.values)
        if not dead:
            return valid, [], None
        bad = {letter.index for letter in dead}
        errors = []
        for letter in dead:
            raw = fetched.message(letter.index)
            errors.append((raw, f"{raw.topic}[{raw.partition}]@{raw.offset} violates contract {letter.contract!r} "
                                f"{letter.version}: {letter.reason}"))
        return valid, errors, [i for i in range(len(fetched)) if i not in bad]

    # ---- checkpoints ----

    def position(self) -> dict[int, Any]:
        return {pid: self._positions[pid] for pid in sorted(self._assigned) if pid in self._positions}

    def seek(self, positions: dict[int, Any]) -> None:
        self._seek_to = {int(pid): int(offset) for pid, offset in positions.items()}

    async def notify_checkpoint_complete(self, positions: dict[int, Any]) -> set[int]:
        """The checkpoint holding ``positions`` is durable: commit them to the consumer group. Returns
        the partitions committed (none when a rebalance is under way or without a group)."""
        if self._consumer is None or self.group_id is None:
            return set() if self.group_id is not None else {int(p) for p in positions}
        from aiokafka.errors import CommitFailedError, IllegalStateError, RebalanceInProgressError
        from aiokafka.structs import OffsetAndMetadata

        offsets = {
            self._tp(int(pid)): OffsetAndMetadata(int(offset), "")
            for pid, offset in positions.items()
            if int(pid) in self._assigned
        }
        if not offsets:
            return set()
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError, RebalanceInProgressError) as exc:
            # A rebalance is under way: the group keeps the previous committed offsets, which an older
            # checkpoint still matches; the next checkpoint commits again.
            logger.warning("%s: offsets not committed during a rebalance (%s)", self.describe(), exc)
            return set()
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s: committed %s", self.describe(), {self.pid(tp.topic, tp.partition): o.offset for tp, o in offsets.items()})
        return {self.pid(tp.topic, tp.partition) for tp in offsets}


def _listener(source: KafkaSource):
    from aiokafka import ConsumerRebalanceListener

    class Listener(ConsumerRebalanceListener):
        """Consumer-group rebalance callbacks, forwarded to the source."""

        async def on_partitions_revoked(self, revoked) -> None:
            source._on_revoked(revoked)

        async def on_partitions_assigned(self, assigned) -> None:
            try:
                await source._on_assigned(assigned)
            except Exception as exc:  # aiokafka would only log it: the job must fail instead
                logger.exception("%s: handling the assignment of %s failed", source.describe(), sorted(assigned))
                source._listener_error = exc

    return Listener()


# ---- sinks ------------------------------------------------------------------------------------------


def _encoder(spec: Any, what: str) -> Callable[[Any], bytes | None]:
    if spec == "json":
        encode = msgspec.json.Encoder().encode
        return encode
    if spec is None:
        return lambda _: None
    if spec == "bytes":
        return lambda v: v if v is None or isinstance(v, bytes) else str(v).encode()
    if spec in ("str", "utf-8"):
        return lambda v: None if v is None else str(v).encode("utf-8")
    if callable(spec):
        return spec
    raise FlowDefinitionError(f"KafkaSink {what}= must be 'json', 'bytes', 'str', None or a callable, got {spec!r}")


def _field(spec: Any) -> Callable[[Any], Any] | None:
    if spec is None:
        return None
    if isinstance(spec, str):
        def get(record, name=spec):
            return record[name] if isinstance(record, dict) else getattr(record, name)

        return get
    if callable(spec):
        return spec
    raise FlowDefinitionError(f"KafkaSink key= must be a field name or a callable, got {spec!r}")


class KafkaSink(Sink):
    """Write records to ``topic``.

    ``key``: a field name or callable giving the message key (encoded with ``key_format``); messages with
    the same key go to the same partition (the producer's default partitioner). ``value``: 'json'
    (default), 'bytes', 'str' or a callable record -> bytes. ``headers``: a callable record -> list of
    ``(str, bytes)``. ``timestamp``: each message's timestamp is the record's event time ("event", the
    default, as Flink's and Kafka Streams' sinks write it; a window result's is its end - 1) or the time
    it is written ("produce"). At-least-once by default (flushed at every checkpoint and at the end);
    with ``transactional_id``, exactly-once through transactions committed with each checkpoint.
    """

    def __init__(
        self,
        topic: str,
        bootstrap_servers: str | list[str] | None = None,
        *,
        key: Any = None,
        key_format: Any = "str",
        value: Any = "json",
        headers: Callable[[Any], list[tuple[str, bytes]]] | None = None,
        timestamp: str = "event",
        transactional_id: str | None = None,
        producer_options: dict[str, Any] | None = None,
        contract: Any = None,
        registry: Any = None,
        subject: str | None = None,
    ) -> None:
        if not isinstance(topic, str) or not topic:
            raise FlowDefinitionError(f"KafkaSink needs a topic name, got {topic!r}")
        if contract is not None:
            # Values are validated and framed in the Confluent wire format; the schema is registered
            # (or looked up) under ``subject`` (default ``<topic>-value``) in ``registry``.
            if registry is None:
                raise FlowDefinitionError("KafkaSink(contract=...) needs registry= (a SchemaRegistry or its URL client)")
            from engine.contracts.wire import ContractSerializer

            value = ContractSerializer(contract, registry, subject or f"{topic}-value").serialize
        self.topic = topic
        self.bootstrap_servers = resolve_bootstrap_servers(bootstrap_servers, type(self).__name__)
        if timestamp not in ("event", "produce"):
            raise FlowDefinitionError(f"KafkaSink timestamp= must be 'event' or 'produce', got {timestamp!r}")
        self.timestamp = timestamp
        self._key = _field(key)
        self._key_name = key if isinstance(key, str) else None
        self._encode_key = _encoder(key_format, "key_format")
        self._encode_value = _encoder(value, "value")
        self._headers = headers
        self.transactional_id = transactional_id
        self.producer_options = dict(producer_options or {})
        # Without headers, whole record batches are framed by a kernel (`kafka_framing`); the producer
        # compresses only batches it builds itself, so compression keeps the per-message path.
        self._framed = headers is None and self.producer_options.get("compression_type") is None and framing_supported()
        # Plain JSON values of a columnar batch (window results) are encoded straight from its columns,
        # with no dict per record (see `_json_columns`).
        self._json_from_columns = self._framed and value == "json"
        self._batch_limit = int(self.producer_options.get("max_batch_size", 256 * 1024))
        self._producer = None
        # Batches handed to the producer, waiting for their acknowledgement, oldest first:
        self._pending: collections.deque[asyncio.Future] = collections.deque()
        # Batches not yet handed over (see `_submit`), the bytes they hold, and the task handing them over:
        self._outbox: collections.deque[tuple[Any, int]] = collections.deque()
        self._outbox_bytes = 0
        self._outbox_room = asyncio.Event()
        self._feeder: asyncio.Task | None = None
        self._feeder_error: BaseException | None = None
        self._in_transaction = False
        self._partition_ids: list[int] | None = None
        self._round_robin = 0
        from aiokafka.partitioner import DefaultPartitioner

        self._partitioner = DefaultPartitioner()

    @property
    def commit_requires_barrier(self) -> bool:
        """With transactions, ``commit`` commits the one open transaction, so checkpoints must not let
        later writes into it (see `engine.io.Sink`)."""
        return bool(self.transactional_id)

    def describe(self) -> str:
        mode = "exactly-once (transactions)" if self.transactional_id else "at-least-once"
        return f"KafkaSink({self.topic}, {mode})"

    async def open(self) -> None:
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import KafkaError

        self._pending, self._outbox, self._outbox_bytes = collections.deque(), collections.deque(), 0
        self._outbox_room, self._feeder, self._feeder_error = asyncio.Event(), None, None
        # Bigger producer batches than aiokafka's 16 KiB default: the sink writes whole micro-batches at
        # once, so fewer, fuller produce requests (still well under the brokers' 1 MiB message limit).
        options = {"bootstrap_servers": self.bootstrap_servers, "linger_ms": 5, "max_batch_size": self._batch_limit,
                   **self.producer_options}
        if self.transactional_id:
            options["transactional_id"] = self.transactional_id
        self._producer = AIOKafkaProducer(**options)
        try:
            await self._producer.start()
        except KafkaError as exc:
            await self.close()
            raise ConnectorError(f"{self.describe()}: cannot start the producer: {exc}") from exc

    async def _begin(self) -> None:
        if self.transactional_id and not self._in_transaction:
            await self._producer.begin_transaction()
            self._in_transaction = True

    async def write(self, batch: Batch) -> None:
        """Encode the batch's records and hand them to the producer as whole record batches.

        Messages without headers go out as record batches framed by a kernel (`kafka_framing`): no
        per-message append, and plain JSON values of a columnar batch (window results) are encoded
        straight from the columns. Keyed messages go to ``murmur2(key) % partitions`` exactly like the
        Java client's (and aiokafka's) default partitioner (computed by a kernel); unkeyed ones have no
        partition of their own, so each producer batch of them goes to the next partition in turn.
        Messages with headers (or a None key among keyed ones) are appended one by one to one producer
        batch per partition. Either way no future or partitioner call per message.
        """
        await self._begin()
        if not len(batch):
            return
        partitions = await self._partitions()
        timestamps = self._timestamps(batch)
        keys = self._message_keys(batch) if self._key is not None else None
        if self._framed and (keys is None or None not in keys):
            await self._write_framed(batch, timestamps, keys, partitions)
        else:
            await self._send_records(batch.records, timestamps.tolist(), keys, partitions)
            self._round_robin += 1

    async def _write_framed(self, batch: Batch, timestamps: np.ndarray, keys: list | None,
                            partitions: list[int]) -> None:
        """Hand the batch over as kernel-framed record batches: plain JSON values of a columnar batch
        encoded straight from its columns into the record batches (`framed_json_batches`), any other
        values encoded one per record first (`framed_batches`)."""
        transactional, limit = bool(self.transactional_id), self._batch_limit
        json_columns = _json_columns(batch) if self._json_from_columns and not batch.has_records else None
        if json_columns is not None:
            names, columns = json_columns
            framed = self._framed_per_partition(
                lambda rows, message_keys: framed_json_batches(names, columns, timestamps, limit, transactional,
                                                               rows, message_keys), keys, partitions)
            if framed is not None:
                await self._submit_framed(framed, partitions)
                return
        encoded = values_buffer([self._encode_value(record) for record in batch.records])
        framed = self._framed_per_partition(
            lambda rows, message_keys: framed_batches(*encoded, timestamps, limit, transactional, rows, message_keys),
            keys, partitions)
        await self._submit_framed(framed, partitions)

    def _message_keys(self, batch: Batch) -> list:
        """The encoded key of each record (``None``: no key); a key field of a columnar batch is read from
        its column, without building the records."""
        name = self._key_name
        if name is not None and not batch.has_records and name in batch.columns:
            column = batch.columns[name]
            if column.dtype == np.int64:  # window results repeat each key many times: encode each once
                encoded: dict[int, Any] = {}
                encode = self._encode_key
                return [encoded[k] if k in encoded else encoded.setdefault(k, encode(k)) for k in column.tolist()]
            return list(map(self._encode_key, column.tolist()))
        key_of, encode_key = self._key, self._encode_key
        return [encode_key(key_of(record)) for record in batch.records]

    def _framed_per_partition(self, frame: Callable[..., list[FramedBatch] | None], keys: list | None,
                              partitions: list[int]) -> list[tuple[list[FramedBatch], int | None]] | None:
        """The batch's record batches and the partition of each run of them, built by ``frame(rows,
        keys)`` (``rows``: the messages to frame, in order, None for all; ``keys``: the encoded keys as a
        `values_buffer`, or None). Unkeyed messages have no partition of their own (None: each record
        batch goes to the next partition in turn); keyed ones go, in the batch's order, to the partition
        of their key. None when ``frame`` cannot encode the values (nothing is handed over then)."""
        if keys is None:
            framed = frame(None, None)
            return None if framed is None else [(framed, None)]
        key_buffer, key_offsets = values_buffer(keys)
        targets = kernels.kafka_key_partitions(key_buffer, key_offsets, len(partitions))
        order = np.argsort(targets, kind="stable")  # each partition's messages in the batch's order
        ends = np.cumsum(np.bincount(targets, minlength=len(partitions)))
        runs = []
        start = 0
        for index, end in enumerate(ends.tolist()):
            if end > start:
                framed = frame(order[start:end], (key_buffer, key_offsets))
                if framed is None:
                    return None
                runs.append((framed, partitions[index]))
            start = end
        return runs

    async def _submit_framed(self, runs: list[tuple[list[FramedBatch], int | None]], partitions: list[int]) -> None:
        for framed, partition in runs:
            for builder in framed:
                if partition is None:
                    await self._submit(builder, partitions[self._round_robin % len(partitions)])
                    self._round_robin += 1
                else:
                    await self._submit(builder, partition)

    def _timestamps(self, batch: Batch) -> np.ndarray:
        """The messages' timestamps (ms): each record's event time, as Flink's and Kafka Streams' sinks
        write it (a window result's is its end - 1), or with ``timestamp="produce"`` the time of writing.
        Kafka timestamps cannot be negative: event times before 1970 are written as the time of writing."""
        now = int(time.time() * 1000)
        if self.timestamp == "produce":
            return np.full(len(batch), now, dtype=np.int64)
        ts = batch.ts
        return np.where(ts < 0, now, ts) if len(ts) and int(ts.min()) < 0 else ts

    async def _submit(self, builder: Any, partition: int) -> None:
        """Queue a filled producer batch for ``partition``; wait only while the queue holds more than
        `OUTBOX_BYTES` (the Java producer's ``buffer.memory``).

        aiokafka takes one batch per partition at a time: handing over the next waits until its sender
        has put the previous one in a produce request, and it has one request in flight per broker. Were
        ``write`` to hand batches over itself, the job would stop at every produce round trip; a feeder
        task hands them over in order instead (`_feed`), while the job goes on. A failure to hand over
        or to deliver a batch fails the next write, or the flush at the next checkpoint.
        """
        self._check_delivery()
        while self._outbox_bytes >= OUTBOX_BYTES:
            self._outbox_room.clear()
            await self._outbox_room.wait()
            self._check_delivery()
        builder.close()  # an open batch would linger linger_ms for more messages; ours are complete
        self._outbox.append((builder, partition))
        self._outbox_bytes += builder.size()
        if self._feeder is None or self._feeder.done():
            self._feeder = asyncio.get_running_loop().create_task(self._feed())

    async def _feed(self) -> None:
        """Hand the queued batches to the producer, in order, until the queue is empty."""
        try:
            while self._outbox:
                builder, partition = self._outbox[0]
                future = await self._producer.send_batch(builder, self.topic, partition=partition)
                self._outbox.popleft()
                self._outbox_bytes -= builder.size()
                self._pending.append(future)
                self._outbox_room.set()
        except Exception as exc:  # kept for the job's next write or flush, which raise it
            self._feeder_error = exc
            self._outbox_room.set()

    def _check_delivery(self) -> None:
        """Raise the error of a failed hand-over or delivery; forget acknowledged batches."""
        if self._feeder_error is not None:
            raise ConnectorError(f"{self.describe()}: producing failed: {self._feeder_error}") from self._feeder_error
        pending = self._pending
        while pending and pending[0].done():
            pending.popleft().result()  # raises a failed batch's error

    async def _send_records(self, records: list, timestamps: list[int], keys: list | None,
                            partitions: list[int]) -> None:
        producer = self._producer
        builders: dict[int, Any] = {}
        encode_value, headers_of = self._encode_value, self._headers
        for i, (record, timestamp) in enumerate(zip(records, timestamps)):
            key = keys[i] if keys is not None else None
            value = encode_value(record)
            headers = list(headers_of(record)) if headers_of is not None else []
            if key is not None:
                partition = self._partitioner(key, partitions, partitions)
            else:
                partition = partitions[self._round_robin % len(partitions)]
            builder = builders.get(partition)
            if builder is None:
                builder = builders[partition] = producer.create_batch()
            if builder.append(timestamp=timestamp, key=key, value=value, headers=headers) is None:
                await self._submit(builder, partition)
                builder = builders[partition] = producer.create_batch()
                builder.append(timestamp=timestamp, key=key, value=value, headers=headers)  # an empty batch takes any record
        for partition, builder in builders.items():
            if builder.record_count():
                await self._submit(builder, partition)

    async def _partitions(self) -> list[int]:
        if self._partition_ids is None:
            known = await self._producer.partitions_for(self.topic)
            if not known:
                raise ConnectorError(f"{self.describe()}: topic {self.topic!r} has no partitions (does it exist?)")
            self._partition_ids = sorted(known)
        return self._partition_ids

    async def _flush(self) -> None:
        """Wait until every batch written so far is acknowledged (or raise why one is not)."""
        if self._feeder is not None:
            await self._feeder  # it returns once the queue is empty; it keeps its error for us
        self._check_delivery()
        pending, self._pending = self._pending, collections.deque()
        if pending:
            await asyncio.gather(*pending)

    async def pre_commit(self, checkpoint_id: int) -> None:
        await self._flush()

    async def commit(self, checkpoint_id: int) -> None:
        if self.transactional_id and self._in_transaction:
            await self._producer.commit_transaction()
            self._in_transaction = False

    async def finish(self) -> None:
        await self._flush()
        await self.commit(-1)

    async def abort(self) -> None:
        await self._stop_feeding()
        self._pending = collections.deque()
        if self.transactional_id and self._in_transaction and self._producer is not None:
            await self._producer.abort_transaction()
            self._in_transaction = False

    async def close(self) -> None:
        await self._stop_feeding()
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def _stop_feeding(self) -> None:
        """Drop the batches not yet handed over (abort and close: nothing of them is to be delivered)."""
        self._outbox.clear()
        self._outbox_bytes = 0
        feeder, self._feeder = self._feeder, None
        if feeder is not None and not feeder.done():
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)


OUTBOX_BYTES = 32 * 1024 * 1024  # batches a KafkaSink queues before a write waits (Java's buffer.memory)
_JSON = msgspec.json.Encoder()


def _json_columns(batch: Batch) -> tuple[list[bytes], list[np.ndarray]] | None:
    """The JSON-encoded column names and the columns of a columnar batch as `kernels.json_object_rows`
    and `kernels.kafka_json_record_batches` take them: the rows they encode are byte for byte what
    ``encode(record)`` gives for the dicts `Batch.records` would build. ``None`` when a column name is not
    a str or a column is of a type the kernels do not take (the records path handles those)."""
    names = tuple(batch.columns)
    if not names or not all(isinstance(name, str) for name in names):
        return None
    columns = []
    for column in batch.columns.values():
        column = _json_row_column(column)
        if column is None:
            return None
        columns.append(column)
    return [_JSON.encode(name) for name in names], columns


def _json_row_column(column: np.ndarray) -> np.ndarray | None:
    """``column`` as one of the dtypes `json_object_rows` takes, with the values ``tolist`` would give;
    ``None`` for anything else (datetimes, fixed-width strings, uint64, 2-D)."""
    if column.ndim != 1:
        return None
    if column.dtype in (np.int64, np.float64, np.bool_, np.object_):
        return column
    kind = column.dtype.kind
    if kind == "i" or (kind == "u" and column.dtype.itemsize < 8):
        return column.astype(np.int64)
    if kind == "f" and column.dtype.itemsize < 8:
        return column.astype(np.float64)  # a float32's value as a Python float, as tolist gives it
    return None


class KafkaDeadLetterSink(KafkaSink):
    """Write dead letters (`engine.dead_letters.DeadLetter`) to a dead-letter topic.

    The message value is the original input (raw bytes when the source could not decode it, otherwise
    its JSON encoding). For a Kafka message (`KafkaMessage`) the original key is the message key and
    the original headers come first, as Kafka Connect's dead-letter queue keeps them; then headers
    carry ``error``, ``step``, and, when known, the original ``topic``, ``partition`` and ``offset``.
    """

    def __init__(self, topic: str, bootstrap_servers: str | list[str] | None = None, **options: Any) -> None:
        super().__init__(topic, bootstrap_servers, key=self._original_key, key_format="bytes", value=self._value,
                         headers=self._letter_headers, **options)

    @staticmethod
    def _original_key(letter: Any) -> Any:
        return letter.record.key if isinstance(letter.record, KafkaMessage) else None

    @staticmethod
    def _value(letter: Any) -> bytes:
        record = letter.record
        if isinstance(record, KafkaMessage):
            record = record.value
        if isinstance(record, (bytes, bytearray)):
            return bytes(record)
        return msgspec.json.encode(record, enc_hook=repr)

    @staticmethod
    def _letter_headers(letter: Any) -> list[tuple[str, bytes]]:
        headers = [("error", letter.error.encode()), ("step", letter.step.encode())]
        if isinstance(letter.record, KafkaMessage):
            m = letter.record
            headers = [*m.headers, *headers,
                       ("topic", m.topic.encode()), ("partition", str(m.partition).encode()), ("offset", str(m.offset).encode())]
        return headers
