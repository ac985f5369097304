"""A bounded read cache with a time-to-live (LRU eviction beyond ``max_entries``)."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Callable, Hashable

from engine.errors import ServiceError

MISS = object()


class TTLCache:
    """``get`` returns `MISS` for absent or expired keys; entries live ``ttl_ms`` milliseconds."""

    def __init__(self, max_entries: int = 10_000, ttl_ms: int = 5_000, clock: Callable[[], float] = time.monotonic):
        if max_entries < 0 or ttl_ms < 0:
            raise ServiceError(f"cache sizes must be >= 0 (max_entries={max_entries}, ttl_ms={ttl_ms})")
        self.max_entries = max_entries
        self.ttl = ttl_ms / 1000.0
        self.clock = clock
        self._data: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Any:
        item = self._data.get(key)
        if item is None or item[0] <= self.clock():
            if item is not None:
                del self._data[key]
            self.misses += 1
            return MISS
        self._data.move_to_end(key)
        self.hits += 1
        return item[1]

    def put(self, key: Hashable, value: Any) -> None:
        if self.max_entries == 0 or self.ttl == 0:
            return
        self._data[key] = (self.clock() + self.ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def invalidate(self, key: Hashable) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
