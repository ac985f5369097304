"""The serving service: consumes validated records into the `RecordStore` and answers queries.

HTTP routes (see `engine.services.http` for auth and error rendering):

- ``GET /records/{id}`` -> the record, or 404 naming the id;
- ``GET /records?field=value&limit=&cursor=`` -> ``{"items": [...], "next_cursor": str|null}``; filters
  on declared (indexed) fields only; ``limit`` defaults to ``default_limit`` and is capped at
  ``max_limit`` (no unbounded result sets); ``since``/``until`` restrict event time to
  ``[since, until)`` (int ms); ``order=desc`` pages newest first;
- ``DELETE /records/{id}`` (protected) removes a record.

Reads go through a TTL cache (by id and by query); a write invalidates the ids it touched and every
cached query page, so a reader never sees a stale page after a write in this process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from engine.errors import ServiceError
from engine.services.base import Service
from engine.services.bus import EventBus, Subscription
from engine.services.cache import MISS, TTLCache
from engine.services.envelope import Envelope
from engine.services.http import NotFoundError, RequestError, Route, json_response, query_int
from engine.services.store import QueryError, RecordStore

logger = logging.getLogger(__name__)

_RESERVED_PARAMS = {"limit", "cursor", "order", "since", "until"}


class ServingService(Service):
    kind = "serving"

    def __init__(self, name: str, bus: EventBus, input: str, *, database: str | Path = ":memory:",
                 indexes: dict[str, str] | list[str] = (), group: str | None = None,
                 on_conflict: str = "ignore", cache_ttl_ms: int = 2_000, cache_max_entries: int = 10_000,
                 default_limit: int = 100, max_limit: int = 1_000, max_batch: int = 500,
                 dedup_window: int = 100_000, max_attempts: int = 3, synchronous: str = "FULL"):
        super().__init__(name)
        if not 1 <= default_limit <= max_limit:
            raise ServiceError(f"serving {name!r}: need 1 <= default_limit <= max_limit, "
                               f"got {default_limit} and {max_limit}")
        self.bus = bus
        self.input = input
        self.group = group or name
        self.store = RecordStore(database, indexes=indexes, on_conflict=on_conflict, synchronous=synchronous)
        self.cache = TTLCache(cache_max_entries, cache_ttl_ms)
        self.default_limit = default_limit
        self.max_limit = max_limit
        self.max_batch = max_batch
        self.dedup_window = dedup_window
        self.max_attempts = max_attempts
        self.subscription: Subscription | None = None
        self._query_generation = 0
        self.stored = self.metrics.counter("engine_serving_records_stored_total", "Records written to the store.")
        self.duplicates = self.metrics.counter("engine_serving_duplicates_total",
                                               "Records not stored because their id was already stored.")
        self.cache_hits = self.metrics.counter("engine_serving_cache_hits_total", "Read-cache hits.")
        self.cache_misses = self.metrics.counter("engine_serving_cache_misses_total", "Read-cache misses.")
        self.request_latency = self.metrics.histogram("engine_serving_request_seconds", "Query latency.")
        self.add_check("store", lambda: self.store.is_open)
        self.add_check("subscription", lambda: self.subscription is not None and self.subscription.running)

    async def on_start(self) -> None:
        self.store.open()
        self.subscription = await self.bus.subscribe(self.input, self.group, self.handle_batch,
                                                     max_batch=self.max_batch, dedup_window=self.dedup_window,
                                                     max_attempts=self.max_attempts)
        self.watch(self.subscription)

    async def on_stop(self, timeout: float) -> None:
        if self.subscription is not None:
            await self.subscription.stop(timeout)
        self.store.close()

    async def handle_batch(self, batch: list[Envelope]) -> None:
        """Store a batch (idempotently) and invalidate the cache entries it affects."""
        with self.batch_latency.time():
            written = self.store.put_many(batch)
        self.records_in.inc(len(batch))
        self.throughput.mark(len(batch))
        self.stored.inc(written)
        self.duplicates.inc(len(batch) - written)
        for env in batch:
            self.cache.invalidate(("id", env.id))
        self._clear_queries()

    def _clear_queries(self) -> None:
        # Any write can change any filtered page: a new generation makes every cached page unreachable
        # in O(1) (the old entries age out of the LRU); ids stay cached unless written.
        self._query_generation += 1

    # --- reads ------------------------------------------------------------------------------------------

    def _cached(self, key, compute):
        value = self.cache.get(key)
        if value is MISS:
            self.cache_misses.inc()
            value = compute()
            self.cache.put(key, value)
        else:
            self.cache_hits.inc()
        return value

    def get(self, record_id: str) -> dict[str, Any] | None:
        return self._cached(("id", record_id), lambda: self.store.get(record_id))

    def query(self, filters: dict[str, Any], limit: int | None = None, cursor: str | None = None, *,
              order: str = "asc", since: int | None = None, until: int | None = None):
        limit = self.default_limit if limit is None else limit
        if not 1 <= limit <= self.max_limit:
            raise QueryError(f"limit must be between 1 and {self.max_limit}, got {limit}")
        key = ("q", self._query_generation, tuple(sorted(filters.items())), limit, cursor, order, since, until)
        return self._cached(key, lambda: self.store.query(filters, limit, cursor, order=order, since=since,
                                                          until=until))

    def summary(self) -> str:
        if not self.store.is_open:
            return ""
        return f"{self.store.count()} records stored, {int(self.duplicates.value)} duplicates ignored"

    def details(self) -> dict[str, Any]:
        return {"input": self.input, "records_stored": self.store.count() if self.store.is_open else None,
                "subscription": None if self.subscription is None else self.subscription.statistics()}

    # --- HTTP -------------------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [Route("GET", "/records/{id}", self._http_get), Route("GET", "/records", self._http_query),
                Route("DELETE", "/records/{id}", self._http_delete, protected=True)]

    def _require_store(self) -> None:
        if not self.store.is_open:
            raise RequestError(f"serving {self.name!r} is not running (state {self.state})", status=503)

    async def _http_get(self, request: web.Request) -> web.Response:
        self._require_store()
        record_id = request.match_info["id"]
        with self.request_latency.time():
            record = self.get(record_id)
        if record is None:
            raise NotFoundError(f"no record with id {record_id!r}")
        return json_response(record)

    async def _http_query(self, request: web.Request) -> web.Response:
        self._require_store()
        limit = query_int(request, "limit", self.default_limit, 1, self.max_limit)
        cursor = request.query.get("cursor") or None
        order = request.query.get("order", "asc")
        if order not in ("asc", "desc"):
            raise RequestError(f"query parameter 'order' must be 'asc' or 'desc', got {order!r}")
        bound = (1 << 63) - 1
        since = query_int(request, "since", None, -bound, bound) if "since" in request.query else None
        until = query_int(request, "until", None, -bound, bound) if "until" in request.query else None
        filters = {}
        for field in request.query.keys():
            if field in _RESERVED_PARAMS:
                continue
            values = request.query.getall(field)
            if len(values) > 1:
                raise RequestError(f"filter {field!r} given {len(values)} times; give each field once")
            try:
                filters[field] = self.store.convert(field, values[0])
            except QueryError as exc:
                raise RequestError(str(exc)) from None
        try:
            with self.request_latency.time():
                items, next_cursor = self.query(filters, limit, cursor, order=order, since=since, until=until)
        except QueryError as exc:
            raise RequestError(str(exc)) from None
        return json_response({"items": items, "next_cursor": next_cursor, "limit": limit})

    async def _http_delete(self, request: web.Request) -> web.Response:
        self._require_store()
        record_id = request.match_info["id"]
        if not self.store.delete(record_id):
            raise NotFoundError(f"no record with id {record_id!r}")
        self.cache.invalidate(("id", record_id))
        self._clear_queries()
        return json_response({"deleted": record_id})
