"""Backfill: date ranges, reprocess none|failed|all, max active runs, backwards, progress."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from engine.errors import OrchestrationError
from engine.orchestration import DAG, Task
from engine.orchestration.backfill import backfill

UTC = timezone.utc
START = datetime(2024, 1, 1, tzinfo=UTC)


def _daily(calls, *, fail_on=frozenset(), max_active_runs=16, active=None):
    async def extract(context):
        day = context.logical_date.day
        calls.append(("extract", day))
        if active is not None:
            active["now"] += 1
            active["peak"] = max(active["peak"], active["now"])
            await asyncio.sleep(0.01)
            active["now"] -= 1
        return day

    def load(day, context):
        calls.append(("load", day))
        if day in fail_on:
            raise RuntimeError(f"load failed for day {day}")

    with DAG("daily", schedule="@daily", start_date=START, max_active_runs=max_active_runs) as d:
        e = Task("extract", extract)
        Task("load", load, args=(e.output,))
    return d


async def test_backfill_a_range_with_progress(scheduler_factory):
    calls = []
    d = _daily(calls)
    s = scheduler_factory(d)
    reports = []
    progress = await backfill(s, "daily", datetime(2024, 1, 1), datetime(2024, 1, 5), on_progress=lambda p: reports.append(str(p)))
    assert progress.total == 5 and progress.succeeded == 5 and progress.failed == 0 and progress.done
    runs = s.store.list_runs("daily")
    assert [r.logical_date.day for r in runs] == [1, 2, 3, 4, 5]
    assert all(r.run_type == "backfill" and r.state == "success" for r in runs)
    assert runs[0].interval_end == datetime(2024, 1, 2, tzinfo=UTC)
    assert sorted(calls) == sorted([("extract", i) for i in range(1, 6)] + [("load", i) for i in range(1, 6)])
    assert reports[0].startswith("backfill daily: 0/5") and reports[-1].startswith("backfill daily: 5/5 dates done (5 succeeded")


async def test_max_active_runs_and_backwards(scheduler_factory):
    calls = []
    active = {"now": 0, "peak": 0}
    d = _daily(calls, active=active)
    s = scheduler_factory(d)
    await backfill(s, "daily", START, datetime(2024, 1, 6), max_active_runs=2, backwards=True)
    assert active["peak"] == 2
    extract_order = [day for name, day in calls if name == "extract"]
    assert extract_order[:2] in ([6, 5], [5, 6]) and extract_order[-2:] in ([2, 1], [1, 2])


async def test_reprocess_none_failed_all(scheduler_factory):
    calls = []
    failing = {3}
    d = _daily(calls, fail_on=failing)
    s = scheduler_factory(d)
    first = await backfill(s, "daily", START, datetime(2024, 1, 4))
    assert (first.succeeded, first.failed) == (3, 1)

    calls.clear()
    again = await backfill(s, "daily", START, datetime(2024, 1, 5), reprocess="none")
    assert (again.left_alone, again.succeeded) == (4, 1) and calls == [("extract", 5), ("load", 5)]

    calls.clear()
    failing.clear()  # the cause is fixed: rerun only what failed
    fixed = await backfill(s, "daily", START, datetime(2024, 1, 5), reprocess="failed")
    assert (fixed.left_alone, fixed.succeeded, fixed.failed) == (4, 1, 0)
    assert calls == [("load", 3)]  # extract for day 3 had succeeded: its result is reused, not recomputed
    assert s.store.run_for_logical_date("daily", datetime(2024, 1, 3, tzinfo=UTC)).state == "success"

    calls.clear()
    everything = await backfill(s, "daily", START, datetime(2024, 1, 2), reprocess="all")
    assert everything.succeeded == 2 and sorted(calls) == [("extract", 1), ("extract", 2), ("load", 1), ("load", 2)]


async def test_bad_backfill_arguments(scheduler_factory):
    d = _daily([])
    s = scheduler_factory(d)
    with pytest.raises(OrchestrationError, match="reprocess must be one of"):
        await backfill(s, "daily", START, START, reprocess="some")
    with pytest.raises(OrchestrationError, match="is before start"):
        await backfill(s, "daily", datetime(2024, 2, 1), START)
    with DAG("manual_only") as m:
        Task("t", lambda: None)
    s.add_dag(m)
    with pytest.raises(OrchestrationError, match="no intervals to backfill"):
        await backfill(s, "manual_only", START, datetime(2024, 1, 2))
