"""Waiting in tests for something to happen: on the condition itself, never for a fixed time."""

from __future__ import annotations

import asyncio
from typing import Callable


async def wait_until(predicate: Callable[[], object], timeout: float = 60.0, interval: float = 0.01) -> None:
    """Poll ``predicate()`` on the event loop until it holds; fail after ``timeout`` seconds.

    The limit is generous on purpose: the wait ends as soon as the condition holds, and the limit only
    stops a broken test from hanging (a loaded CI machine can be many times slower than a laptop)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not reached within {timeout}s")
        await asyncio.sleep(interval)
