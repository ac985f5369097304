"""Time sources for the scheduler: the system clock, and a fake one for tests.

The scheduler reads time only through a `Clock`: ``now()`` (aware UTC) for schedules and sensor
timeouts, ``sleep()`` for retry delays, sensor poke intervals and waiting for the next scheduled run.
`FakeClock` makes those deterministic: ``sleep`` records the delay, advances virtual time and yields.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone


class Clock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


SystemClock = Clock


class FakeClock(Clock):
    """Virtual time: ``sleep(s)`` returns (almost) at once after moving ``now()`` forward by ``s``.

    ``sleeps`` lists every requested delay in order, so tests can assert retry/backoff timing exactly.
    """

    def __init__(self, start: datetime | None = None):
        self._now = start or datetime(2024, 1, 1, tzinfo=timezone.utc)
        if self._now.tzinfo is None:
            raise ValueError("FakeClock needs an aware start datetime")
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)
