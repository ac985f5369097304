"""Fixtures for the orchestration tests: schedulers over throwaway stores."""

from __future__ import annotations

import pytest

from engine.orchestration import Scheduler


@pytest.fixture
async def scheduler_factory():
    """Build schedulers (in-memory store unless ``store=`` is given); all are closed after the test."""
    made: list[Scheduler] = []

    def make(*dags, **options):
        options.setdefault("store", ":memory:")
        s = Scheduler(dags, **options)
        made.append(s)
        return s

    yield make
    for s in made:
        await s.close()
