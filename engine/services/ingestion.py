"""The ingestion service: pulls records from a source, standardises them into envelopes, batches, publishes.

A source is any iterable or async iterable of records (mappings), or a zero-argument callable returning
one (so a restart can pull again); `jsonl_source` reads a JSON-lines file; the dataflow layer's memory
connector plugs in the same way. Records can also be pushed over HTTP with ``POST /ingest`` (protected:
a JSON array, one JSON object, or JSON lines with ``Content-Type: application/x-ndjson``).

Standardising: the envelope id is ``str(record[id_field])`` when ``id_field`` is set (stable across
re-ingestion, which is what makes downstream de-duplication work), otherwise a fresh random id; the
time is ``record[time_field]`` (int ms) when set, otherwise the wall clock; ``key_field`` sets the
``partition_key`` header, so on Kafka all records of one key share a partition and stay in order. A record that cannot be
standardised (not a mapping, missing id, non-integer time) is published to ``<output>.dead-letter`` with
the reason; it is never dropped silently.

Batching: a batch is published when it holds ``batch_size`` records or its first record has waited
``linger_ms``. Stopping drains: the pending batch is published before the service stops.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from pathlib import Path
from typing import Any, AsyncIterable, Callable, Iterable, Iterator

import msgspec
from aiohttp import web

from engine.errors import ServiceError
from engine.services.base import Service
from engine.services.bus import PARTITION_KEY_HEADER, EventBus, dead_letter_channel
from engine.services.envelope import Envelope, new_id, now_ms
from engine.services.http import RequestError, Route, json_response

logger = logging.getLogger(__name__)

Source = Iterable[Any] | AsyncIterable[Any] | Callable[[], Iterable[Any] | AsyncIterable[Any]]


class StandardiseError(ServiceError):
    """A record that cannot become an envelope; the message names the field and the value."""


def jsonl_source(path: str | Path) -> Iterator[Any]:
    """Records of a JSON-lines file; an undecodable line is yielded as a `StandardiseError` (dead-lettered).

    A plain generator: the service reads it in chunks of ``batch_size`` lines between loop turns.
    """
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield msgspec.json.decode(line)
            except msgspec.DecodeError as exc:
                yield StandardiseError(f"{path}:{number}: not valid JSON ({exc}): {line[:200]!r}")


def _open(source: Source):
    if callable(source) and not hasattr(source, "__iter__") and not hasattr(source, "__aiter__"):
        source = source()
    return source


class IngestionService(Service):
    kind = "ingestion"

    def __init__(self, name: str, bus: EventBus, output: str, *, source: Source | None = None,
                 source_name: str | None = None, id_field: str | None = None, time_field: str | None = None,
                 schema_id: str | None = None, key_field: str | None = None, batch_size: int = 500,
                 linger_ms: int = 200):
        super().__init__(name)
        if batch_size < 1 or linger_ms < 0:
            raise ServiceError(f"ingestion {name!r}: batch_size must be >= 1 and linger_ms >= 0")
        self.bus = bus
        self.output = output
        self.source = source
        self.source_name = source_name or name
        self.id_field, self.time_field, self.schema_id = id_field, time_field, schema_id
        self.key_field = key_field
        self.batch_size, self.linger = batch_size, linger_ms / 1000.0
        self.source_done = source is None
        self._queue: asyncio.Queue | None = None
        self._stopping = False
        self.rejected = self.metrics.counter("engine_ingestion_records_rejected_total",
                                             "Records that could not be standardised (sent to the dead-letter channel).")
        self.batches_published = self.metrics.counter("engine_ingestion_batches_total", "Batches published.")

    # --- standardising --------------------------------------------------------------------------------

    def standardise(self, record: Any) -> Envelope:
        """One record as an envelope (see the module docstring); raises StandardiseError."""
        if isinstance(record, StandardiseError):
            raise record
        if not isinstance(record, dict):
            raise StandardiseError(f"ingestion {self.name!r}: a record must be a JSON object/mapping, "
                                   f"got {type(record).__name__}: {str(record)[:100]!r}")
        if self.id_field is not None:
            key = record.get(self.id_field)
            if key is None or isinstance(key, (dict, list)):
                raise StandardiseError(f"ingestion {self.name!r}: id field {self.id_field!r} is missing or not a "
                                       f"scalar (value {key!r})")
            env_id = str(key)
        else:
            env_id = new_id()
        if self.time_field is not None:
            ts = record.get(self.time_field)
            if not isinstance(ts, int) or isinstance(ts, bool):
                raise StandardiseError(f"ingestion {self.name!r}: time field {self.time_field!r} must be an int "
                                       f"(ms since the epoch), got {ts!r}")
        else:
            ts = now_ms()
        headers = {}
        if self.key_field is not None:
            key = record.get(self.key_field)
            if key is None or isinstance(key, (dict, list)):
                raise StandardiseError(f"ingestion {self.name!r}: key field {self.key_field!r} is missing or not "
                                       f"a scalar (value {key!r})")
            headers[PARTITION_KEY_HEADER] = str(key)
        return Envelope(id=env_id, source=self.source_name, time=ts, payload=record, schema_id=self.schema_id,
                        headers=headers)

    async def ingest(self, records: list[Any]) -> tuple[int, list[dict[str, Any]]]:
        """Standardise and publish ``records`` now (the HTTP path); returns (accepted, rejections)."""
        good, failures, rejected = [], [], []
        for index, record in enumerate(records):
            try:
                good.append(self.standardise(record))
            except StandardiseError as exc:
                rejected.append({"index": index, "error": str(exc)})
                failures.append((str(exc), record))
        await self._publish(good)
        if failures:
            await self._dead_letter(failures)
        return len(good), rejected

    async def _publish(self, batch: list[Envelope]) -> None:
        if not batch:
            return
        with self.batch_latency.time():
            await self.bus.publish(self.output, batch)
        self.records_out.inc(len(batch))
        self.records_in.inc(len(batch))
        self.throughput.mark(len(batch))
        self.batches_published.inc()

    async def _dead_letter(self, failures: list[tuple[str, Any]]) -> None:
        envelopes = []
        for reason, record in failures:
            try:
                payload = {"record": msgspec.to_builtins(record)}
            except (TypeError, msgspec.EncodeError):
                payload = {"record": repr(record)[:10_000]}
            envelopes.append(Envelope(id=new_id(), source=self.source_name, time=now_ms(), payload=payload,
                                      headers={"error": reason}))
        self.rejected.inc(len(envelopes))
        for reason, _ in failures:
            self._log(logging.WARNING, f"rejected record: {reason}", "ingestion.rejected")
        await self.bus.publish(dead_letter_channel(self.output), envelopes)

    # --- the pull loop --------------------------------------------------------------------------------

    async def on_start(self) -> None:
        self._stopping = False
        if self.source is not None:
            self.source_done = False
            self._queue = asyncio.Queue(maxsize=4)  # chunks; bounded: backpressure on the source
            self._reader = self.spawn(self._read(), "reader")
            self._batcher = self.spawn(self._batch_loop(), "batcher")

    async def _read(self) -> None:
        """Move records from the source to the queue in chunks (lists), never one loop turn per record
        for a synchronous source; an asynchronous source hands over what it yields as it yields it."""
        try:
            source = _open(self.source)
            if hasattr(source, "__aiter__"):
                async for record in source:
                    await self._queue.put([record])
            else:
                records = iter(source)
                while True:
                    chunk = list(itertools.islice(records, self.batch_size))
                    if not chunk:
                        break
                    await self._queue.put(chunk)
                    await asyncio.sleep(0)  # let the batcher publish between chunks
        finally:
            # Also on cancellation (stop): the batcher drains what was read, then ends.
            await self._queue.put(_END)

    async def _batch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        pending: list[Envelope] = []
        failures: list[tuple[str, Any]] = []
        deadline = None
        while True:
            if deadline is None:
                item = await self._queue.get()
            else:
                try:
                    item = await asyncio.wait_for(self._queue.get(), max(0.0, deadline - loop.time()))
                except asyncio.TimeoutError:
                    item = _FLUSH
            while True:  # take everything already queued without another loop turn
                if item is _END or item is _FLUSH:
                    await self._flush(pending, failures)
                    pending, failures, deadline = [], [], None
                    if item is _END:
                        if not self._stopping:
                            self.source_done = True
                            self._log(logging.INFO, "source exhausted", "ingestion.source_done")
                        return
                else:
                    for record in item:
                        try:
                            pending.append(self.standardise(record))
                        except StandardiseError as exc:
                            failures.append((str(exc), record))
                        if len(pending) + len(failures) >= self.batch_size:
                            await self._flush(pending, failures)
                            pending, failures = [], []
                    deadline = None if not (pending or failures) else (deadline or loop.time() + self.linger)
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break

    async def _flush(self, pending, failures) -> None:
        await self._publish(pending)
        if failures:
            await self._dead_letter(failures)

    async def on_stop(self, timeout: float) -> None:
        """Stop pulling from the source; everything already pulled is published (drain)."""
        self._stopping = True
        reader = getattr(self, "_reader", None)
        batcher = getattr(self, "_batcher", None)
        if reader is not None and not reader.done():
            reader.cancel()
        if batcher is not None and not batcher.done():
            await asyncio.wait({batcher}, timeout=timeout)

    def summary(self) -> str:
        source = "push only (POST /ingest)" if self.source is None else (
            "source exhausted" if self.source_done else "reading source")
        return f"{source}, {int(self.rejected.value)} rejected"

    def details(self) -> dict[str, Any]:
        return {"output": self.output, "source_done": self.source_done,
                "rejected": int(self.rejected.value)}

    # --- HTTP -----------------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [Route("POST", "/ingest", self._http_ingest, protected=True)]

    async def _http_ingest(self, request: web.Request) -> web.Response:
        if self.state != "running":
            raise RequestError(f"ingestion {self.name!r} is not running (state {self.state})", status=503)
        body = await request.read()  # 413 beyond the app's body limit
        if not body.strip():
            raise RequestError("empty request body: send a JSON array of records, one object, or JSON lines")
        try:
            if request.content_type == "application/x-ndjson":
                records = [msgspec.json.decode(line) for line in body.splitlines() if line.strip()]
            else:
                decoded = msgspec.json.decode(body)
                records = decoded if isinstance(decoded, list) else [decoded]
        except msgspec.DecodeError as exc:
            raise RequestError(f"request body is not valid JSON: {exc}") from None
        accepted, rejected = await self.ingest(records)
        return json_response({"accepted": accepted, "rejected": rejected}, status=200 if not rejected else 207)


_END = object()
_FLUSH = object()
