"""Retry delays: exponential backoff with a cap and jitter."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from engine.orchestration.task import Task


def retry_delay_seconds(task: "Task", retry_number: int, rng: random.Random) -> float:
    """Delay before retry ``retry_number`` (1 for the first retry) of ``task``.

    Nominal delay: ``retry_delay``, times ``2 ** (retry_number - 1)`` with ``retry_exponential_backoff``,
    capped by ``max_retry_delay``. With ``retry_jitter = j`` the delay is drawn uniformly from
    ``[nominal * (1 - j), nominal]``: jitter spreads retries of many tasks apart but never waits longer
    than the nominal delay (so never longer than the cap).
    """
    delay = task.retry_delay
    if task.retry_exponential_backoff:
        delay = delay * (2 ** min(retry_number - 1, 62))
    if task.max_retry_delay is not None:
        delay = min(delay, task.max_retry_delay)
    if task.retry_jitter:
        delay = delay * (1.0 - task.retry_jitter * rng.random())
    return delay
