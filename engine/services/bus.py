"""The event bus: named channels of envelopes, consumer groups, at-least-once delivery.

One interface, two implementations:

- `InMemoryBus` (the embedded default): an append-only log per channel in this process, with committed
  positions per consumer group, so a subscriber that stops and subscribes again under the same group
  resumes where it committed, exactly as on Kafka. Bounded: a publisher waits (backpressure) while a
  channel holds ``max_retained`` envelopes that some group has not consumed yet.
- `KafkaBus`: one topic per channel (``topic_prefix + channel``), envelopes as msgpack values keyed by
  the ``partition_key`` header (set by ingestion's ``key_field``; envelopes of one key stay in order)
  or else the envelope id; consumer groups named ``topic_prefix + group``; decouples processes.

Delivery contract (both): a subscription calls ``handler(batch)`` with a list of envelopes in channel
order (per partition on Kafka) and commits the batch's position only after the handler returned. A
handler that raises is retried ``max_attempts`` times with backoff; then the batch goes to the
``<channel>.dead-letter`` channel with an ``error`` header and is committed, so one poison batch cannot
stall a service and nothing is dropped silently. A crash between handling and committing redelivers
the batch: consumers must be idempotent. Each subscription de-duplicates envelope ids within a bounded
window (``dedup_window`` most recent ids), which absorbs redeliveries within one process lifetime;
stores keyed by envelope id (serving, quarantine) absorb the rest.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import re
from collections import OrderedDict
from typing import Any, Awaitable, Callable, Sequence

from engine.errors import ServiceError
from engine.services import envelope as envelope_codec
from engine.services.envelope import Envelope, EnvelopeDecodeError

logger = logging.getLogger(__name__)

Handler = Callable[[list[Envelope]], Awaitable[None]]

_CHANNEL = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
DEAD_LETTER_SUFFIX = ".dead-letter"
# Kafka message key: this header when present (per-key order, as in Kafka Streams), else the envelope id.
PARTITION_KEY_HEADER = "partition_key"


class BusError(ServiceError):
    """Event-bus failures (bad channel names, a subscription that cannot continue, broker errors)."""


def check_channel(name: str) -> str:
    if not isinstance(name, str) or not _CHANNEL.match(name):
        raise BusError(f"invalid channel name {name!r}: use 1-200 letters, digits, '.', '_' or '-'")
    return name


def dead_letter_channel(channel: str) -> str:
    return channel + DEAD_LETTER_SUFFIX


class Deduplicator:
    """Remembers the most recent ``window`` ids (bounded memory) to drop redelivered envelopes."""

    def __init__(self, window: int = 100_000):
        if window < 0:
            raise BusError(f"dedup_window must be >= 0, got {window}")
        self.window = window
        self._seen: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, envelope_id: str) -> bool:
        return envelope_id in self._seen

    def filter(self, envelopes: Sequence[Envelope]) -> list[Envelope]:
        """Envelopes whose id was not seen (duplicates inside the batch dropped too, first kept)."""
        out, batch_ids = [], set()
        for env in envelopes:
            if env.id in self._seen or env.id in batch_ids:
                continue
            batch_ids.add(env.id)
            out.append(env)
        return out

    def remember(self, envelopes: Sequence[Envelope]) -> None:
        if self.window == 0:
            return
        for env in envelopes:
            self._seen[env.id] = None
            self._seen.move_to_end(env.id)
        while len(self._seen) > self.window:
            self._seen.popitem(last=False)


class Subscription(abc.ABC):
    """A running consumer of one channel for one group. Create it with `EventBus.subscribe`.

    ``stop(timeout)`` drains: no new batch is fetched, the batch in hand is handled and committed, then
    the consumer closes. If the handler does not finish within ``timeout`` seconds it is cancelled and
    that batch stays uncommitted (it is redelivered to the group's next subscriber).
    """

    def __init__(self, bus: "EventBus", channel: str, group: str, handler: Handler, *,
                 max_batch: int, max_attempts: int, retry_backoff: float, dedup_window: int):
        if max_batch < 1:
            raise BusError(f"max_batch must be >= 1, got {max_batch}")
        if max_attempts < 1:
            raise BusError(f"max_attempts must be >= 1, got {max_attempts}")
        self.bus = bus
        self.channel = channel
        self.group = group
        self.handler = handler
        self.max_batch = max_batch
        self.max_attempts = max_attempts
        self.retry_backoff = retry_backoff
        self.dedup = Deduplicator(dedup_window)
        self.delivered = 0  # envelopes handed to the handler (after de-duplication)
        self.duplicates = 0  # envelopes dropped as already seen
        self.dead_lettered = 0
        self.commits = 0
        self.error: BaseException | None = None  # set when the consume loop died
        self._stopping = False
        self._handling = False
        self._task: asyncio.Task | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def _start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"subscription:{self.channel}:{self.group}")

    async def _run(self) -> None:
        try:
            while not self._stopping:
                fetched = await self._fetch()
                if fetched is None:
                    continue
                envelopes, token, rejects = fetched
                self._handling = True
                try:
                    await self._handle(envelopes, rejects)
                    await self._commit(token)
                    self.commits += 1
                finally:
                    self._handling = False
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.error = exc
            logger.error("subscription failed", exc_info=True,
                         extra={"channel": self.channel, "group": self.group, "event": "subscription.failed"})
            raise

    async def _handle(self, envelopes: list[Envelope], rejects: list[tuple[bytes, str]]) -> None:
        for raw, reason in rejects:
            await self.bus._publish_raw_dead_letter(self.channel, raw, reason)
            self.dead_lettered += 1
        fresh = self.dedup.filter(envelopes)
        self.duplicates += len(envelopes) - len(fresh)
        if not fresh:
            return
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.handler(fresh)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if attempt < self.max_attempts:
                    logger.warning("handler failed; retrying", exc_info=True,
                                   extra={"channel": self.channel, "group": self.group, "attempt": attempt,
                                          "event": "subscription.retry"})
                    await asyncio.sleep(self.retry_backoff * (2 ** (attempt - 1)))
                    continue
                reason = f"{type(exc).__name__}: {exc}"
                logger.error("handler failed %d times; batch of %d goes to %s", attempt, len(fresh),
                             dead_letter_channel(self.channel),
                             extra={"channel": self.channel, "group": self.group, "event": "subscription.dead_letter"})
                await self.bus.publish(dead_letter_channel(self.channel),
                                       [env.with_headers(error=reason, **{"error.group": self.group}) for env in fresh])
                self.dead_lettered += len(fresh)
                break
        self.dedup.remember(fresh)
        self.delivered += len(fresh)

    async def stop(self, timeout: float = 10.0) -> None:
        """Drain and close (see the class docstring). Idempotent."""
        self._stopping = True
        task = self._task
        if task is not None and not task.done():
            if not self._handling:
                task.cancel()  # waiting for data: nothing in hand to lose
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except asyncio.TimeoutError:
                logger.warning("handler did not finish within %.1fs; cancelling (batch will be redelivered)",
                               timeout, extra={"channel": self.channel, "group": self.group})
                task.cancel()
            except asyncio.CancelledError:
                if not task.done():  # the caller of stop() was cancelled, not the consume loop
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    await self._close()
                    raise
            except Exception:
                pass  # the consume loop's failure is in self.error (and was logged)
            await asyncio.gather(task, return_exceptions=True)
        await self._close()

    def lag(self) -> int | None:
        """Envelopes on the channel this group has not committed yet (None while unknown).

        In-memory: exact. Kafka: from the fetch high-water mark of the partitions fetched last, so it is
        current while the subscription is busy and 0 after it caught up.
        """
        return None

    def statistics(self) -> dict[str, Any]:
        return {"channel": self.channel, "group": self.group, "running": self.running, "lag": self.lag(),
                "delivered": self.delivered, "duplicates": self.duplicates,
                "dead_lettered": self.dead_lettered, "commits": self.commits,
                "error": None if self.error is None else repr(self.error)}

    @abc.abstractmethod
    async def _fetch(self) -> tuple[list[Envelope], Any, list[tuple[bytes, str]]] | None:
        """The next batch: (envelopes, commit token, undecodable raw messages); None if nothing yet."""

    @abc.abstractmethod
    async def _commit(self, token: Any) -> None: ...

    async def _close(self) -> None:
        pass


class EventBus(abc.ABC):
    """Channels of envelopes with consumer groups; see the module docstring for the delivery contract."""

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc):
        await self.close()

    @abc.abstractmethod
    async def publish(self, channel: str, envelopes: Sequence[Envelope]) -> None:
        """Append ``envelopes`` to ``channel``; returns once they are durable on the bus."""

    async def subscribe(self, channel: str, group: str, handler: Handler, *, max_batch: int = 500,
                        max_attempts: int = 3, retry_backoff: float = 0.05,
                        dedup_window: int = 100_000) -> Subscription:
        """Start consuming ``channel`` as ``group``: ``handler(batch)`` runs for each batch in order."""
        check_channel(channel)
        check_channel(group)
        sub = await self._make_subscription(channel, group, handler, max_batch=max_batch, max_attempts=max_attempts,
                                            retry_backoff=retry_backoff, dedup_window=dedup_window)
        sub._start()
        return sub

    @abc.abstractmethod
    async def _make_subscription(self, channel: str, group: str, handler: Handler, **options) -> Subscription: ...

    async def _publish_raw_dead_letter(self, channel: str, raw: bytes, reason: str) -> None:
        raise BusError(f"undecodable message on {channel!r}: {reason}")


# --- in-process ---------------------------------------------------------------------------------------


class _Log:
    def __init__(self):
        self.entries: list[Envelope] = []
        self.base = 0  # offset of entries[0]
        self.committed: dict[str, int] = {}  # group -> next offset to consume
        self.active: set[str] = set()  # groups with a running subscription
        self.changed = asyncio.Condition()

    @property
    def end(self) -> int:
        return self.base + len(self.entries)

    def trim(self) -> None:
        if not self.committed:
            return
        low = min(self.committed.values())
        if low > self.base:
            del self.entries[: low - self.base]
            self.base = low


class InMemoryBus(EventBus):
    """In-process channels (see the module docstring). One running subscription per (channel, group)."""

    def __init__(self, max_retained: int = 1_000_000):
        if max_retained < 1:
            raise BusError(f"max_retained must be >= 1, got {max_retained}")
        self.max_retained = max_retained
        self._logs: dict[str, _Log] = {}

    def _log(self, channel: str) -> _Log:
        log = self._logs.get(channel)
        if log is None:
            log = self._logs[channel] = _Log()
        return log

    async def publish(self, channel: str, envelopes: Sequence[Envelope]) -> None:
        check_channel(channel)
        log = self._log(channel)
        for env in envelopes:
            if not isinstance(env, Envelope):
                raise BusError(f"publish to {channel!r}: expected Envelope, got {type(env).__name__}")
        pending = list(envelopes)
        async with log.changed:
            while pending:
                log.trim()
                room = self.max_retained - len(log.entries)
                if room <= 0:
                    # Backpressure: wait until a consumer commits (bounded memory, nothing dropped).
                    await log.changed.wait()
                    continue
                log.entries.extend(pending[:room])
                pending = pending[room:]
                log.changed.notify_all()

    def declare_group(self, channel: str, group: str) -> None:
        """Make ``channel`` retain envelopes for ``group`` before it first subscribes.

        Envelopes are trimmed once every group known so far has committed them, so a platform declares
        all its consumer groups up front and the start order of its services does not matter.
        """
        log = self._log(check_channel(channel))
        log.committed.setdefault(check_channel(group), log.base)

    def backlog(self, channel: str, group: str) -> int:
        """Envelopes in ``channel`` not yet committed by ``group``."""
        log = self._log(channel)
        return log.end - log.committed.get(group, log.base)

    def channel_size(self, channel: str) -> int:
        return len(self._log(channel).entries)

    def read_all(self, channel: str) -> list[Envelope]:
        """The retained envelopes of ``channel`` (for tests and inspection)."""
        return list(self._log(channel).entries)

    async def _make_subscription(self, channel, group, handler, **options):
        log = self._log(channel)
        if group in log.active:
            raise BusError(f"group {group!r} already has a running subscription on {channel!r} "
                           "(the in-memory bus runs one consumer per group; stop it first)")
        log.active.add(group)
        log.committed.setdefault(group, log.base)
        return _MemorySubscription(self, channel, group, handler, log=log, **options)


class _MemorySubscription(Subscription):
    def __init__(self, bus, channel, group, handler, *, log: _Log, **options):
        super().__init__(bus, channel, group, handler, **options)
        self.log = log

    async def _fetch(self):
        log = self.log
        async with log.changed:
            await log.changed.wait_for(lambda: log.end > log.committed[self.group])
            start = log.committed[self.group]
            batch = log.entries[start - log.base: start - log.base + self.max_batch]
        return batch, start + len(batch), []

    async def _commit(self, token: int) -> None:
        log = self.log
        async with log.changed:
            log.committed[self.group] = max(log.committed[self.group], token)
            log.trim()
            log.changed.notify_all()  # wake publishers waiting for room

    def lag(self) -> int:
        return self.log.end - self.log.committed.get(self.group, self.log.base)

    async def _close(self) -> None:
        self.log.active.discard(self.group)


# --- Kafka ----------------------------------------------------------------------------------------------


class KafkaBus(EventBus):
    """Channels as Kafka topics through aiokafka (see the module docstring).

    The producer uses ``acks="all"`` and no idempotence/transactions (not needed for at-least-once, and
    not every Kafka-protocol broker supports them). Topics are created on first use with ``partitions``
    partitions and ``replication_factor`` replicas (1 suits a single broker; use 3 in production). ``client_options`` (connection settings such as ``security_protocol``, ``sasl_*``,
    ``ssl_context``) go to every client, producer, consumers and admin; ``producer_options`` /
    ``consumer_options`` to one kind only.
    """

    def __init__(self, bootstrap_servers: str, *, topic_prefix: str = "engine.", partitions: int = 1,
                 replication_factor: int = 1,
                 client_id: str = "engine-services", poll_timeout_ms: int = 500,
                 producer_options: dict | None = None, consumer_options: dict | None = None,
                 client_options: dict | None = None):
        if partitions < 1:
            raise BusError(f"partitions must be >= 1, got {partitions}")
        if topic_prefix and not _CHANNEL.match(topic_prefix):
            raise BusError(f"invalid topic_prefix {topic_prefix!r}")
        self.bootstrap_servers = bootstrap_servers
        self.topic_prefix = topic_prefix
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.client_id = client_id
        self.poll_timeout_ms = poll_timeout_ms
        self.producer_options = dict(producer_options or {})
        self.consumer_options = dict(consumer_options or {})
        self.client_options = dict(client_options or {})
        self._producer = None
        self._known_topics: set[str] = set()
        self._topic_lock = asyncio.Lock()

    def topic(self, channel: str) -> str:
        return self.topic_prefix + check_channel(channel)

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        if self._producer is not None:
            return
        options = {"acks": "all", "enable_idempotence": False, "client_id": self.client_id, **self.client_options,
                   **self.producer_options}
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers, **options)
        try:
            await producer.start()
        except Exception as exc:
            await producer.stop()
            raise BusError(f"cannot connect to Kafka at {self.bootstrap_servers}: {exc}") from exc
        self._producer = producer

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def ensure_topic(self, channel: str) -> str:
        """Create the channel's topic if it does not exist; returns the topic name."""
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic
        from aiokafka.errors import TopicAlreadyExistsError

        topic = self.topic(channel)
        if topic in self._known_topics:
            return topic
        async with self._topic_lock:
            if topic in self._known_topics:
                return topic
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers, client_id=self.client_id,
                                        **self.client_options)
            await admin.start()
            try:
                existing = set(await admin.list_topics())
                if topic not in existing:
                    try:
                        await admin.create_topics([NewTopic(name=topic, num_partitions=self.partitions,
                                                            replication_factor=self.replication_factor)])
                    except TopicAlreadyExistsError:
                        pass
            finally:
                await admin.close()
            self._known_topics.add(topic)
        return topic

    def _require_producer(self):
        if self._producer is None:
            raise BusError("KafkaBus is not started; call `await bus.start()` (or use `async with bus`)")
        return self._producer

    async def publish(self, channel: str, envelopes: Sequence[Envelope]) -> None:
        producer = self._require_producer()
        topic = await self.ensure_topic(channel)
        futures = []
        for env in envelopes:
            if not isinstance(env, Envelope):
                raise BusError(f"publish to {channel!r}: expected Envelope, got {type(env).__name__}")
            key = env.headers.get(PARTITION_KEY_HEADER) or env.id
            futures.append(await producer.send(topic, value=envelope_codec.encode(env), key=key.encode()))
        if futures:
            await asyncio.gather(*futures)

    async def _publish_raw_dead_letter(self, channel: str, raw: bytes, reason: str) -> None:
        producer = self._require_producer()
        topic = await self.ensure_topic(dead_letter_channel(channel))
        await producer.send_and_wait(topic, value=raw, headers=[("error", reason.encode())])

    async def _make_subscription(self, channel, group, handler, **options):
        from aiokafka import AIOKafkaConsumer

        self._require_producer()  # dead letters and handlers publish through it
        topic = await self.ensure_topic(channel)
        consumer_opts = {"enable_auto_commit": False, "auto_offset_reset": "earliest",
                         "client_id": self.client_id, **self.client_options, **self.consumer_options}
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=self.bootstrap_servers,
                                    group_id=self.topic_prefix + group, **consumer_opts)
        try:
            await consumer.start()
        except Exception as exc:
            await consumer.stop()
            raise BusError(f"cannot start a consumer for {topic!r} at {self.bootstrap_servers}: {exc}") from exc
        return _KafkaSubscription(self, channel, group, handler, consumer=consumer, **options)


class _KafkaSubscription(Subscription):
    def __init__(self, bus: KafkaBus, channel, group, handler, *, consumer, **options):
        super().__init__(bus, channel, group, handler, **options)
        self.consumer = consumer
        self._lag: dict = {}  # partition -> high-water mark minus the next offset, after the last fetch

    async def _fetch(self):
        records = await self.consumer.getmany(timeout_ms=self.bus.poll_timeout_ms, max_records=self.max_batch)
        if not records:
            return None
        envelopes, rejects, offsets = [], [], {}
        for tp, messages in records.items():
            for message in messages:
                try:
                    envelopes.append(envelope_codec.decode(message.value or b""))
                except EnvelopeDecodeError as exc:
                    rejects.append((message.value or b"", f"{tp.topic}[{tp.partition}]@{message.offset}: {exc}"))
                offsets[tp] = message.offset + 1
        for tp, next_offset in offsets.items():
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                self._lag[tp] = max(0, highwater - next_offset)
        return envelopes, offsets, rejects

    def lag(self) -> int | None:
        return sum(self._lag.values()) if self._lag else None

    async def _commit(self, offsets) -> None:
        from aiokafka.errors import CommitFailedError

        try:
            await self.consumer.commit(offsets)
        except CommitFailedError as exc:
            # The group rebalanced under us: the batch is redelivered to the new owner (at-least-once).
            logger.warning("commit failed after a rebalance; batch will be redelivered: %s", exc,
                           extra={"channel": self.channel, "group": self.group})

    async def _close(self) -> None:
        await self.consumer.stop()
