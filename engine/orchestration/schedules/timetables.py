"""Timetables: when a DAG runs and which data interval each run covers.

A scheduled run covers the half-open data interval ``[start, end)``; its ``logical_date`` is ``start``
and it is created once ``end`` has passed (Airflow's data-interval semantics: the daily run for Monday
starts just after Monday ends). All instants are aware datetimes; cron schedules are evaluated on the
DAG timezone's wall clock (see `engine.orchestration.schedules.cron` for DST behaviour), fixed
intervals in absolute time anchored at ``start_date``.

catchup=True creates a run for every interval since the last one (or since ``start_date``);
catchup=False skips to the latest complete interval. A manual run for logical date ``d`` covers the
scheduled interval that contains ``d``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone as dt_timezone
from typing import Any, Iterator
from zoneinfo import ZoneInfo

from engine.orchestration.datasets import Dataset, DatasetCondition, _DatasetBoolean, as_condition
from engine.orchestration.exceptions import DagDefinitionError, OrchestrationError
from engine.orchestration.schedules.cron import CronExpression

UTC = dt_timezone.utc
_EPS = timedelta(microseconds=1)


@dataclass(frozen=True)
class DataInterval:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class RunInfo:
    """A run the timetable wants: its logical date, data interval, and the earliest time to create it."""

    logical_date: datetime
    data_interval: DataInterval
    run_after: datetime


class Timetable:
    """Base: a manual-only schedule (``schedule=None``)."""

    periodic = False
    description = "manual"

    def next_run(
        self, last: DataInterval | None, *, start_date: datetime | None, end_date: datetime | None, catchup: bool, now: datetime
    ) -> RunInfo | None:
        return None

    def manual_interval(self, logical_date: datetime) -> DataInterval:
        return DataInterval(logical_date, logical_date)

    def intervals(self, start: datetime, end: datetime) -> Iterator[DataInterval]:
        """Scheduled intervals whose logical date lies in ``[start, end]`` (for backfills)."""
        raise OrchestrationError(f"a {self.description} schedule has no intervals to backfill")
        yield  # pragma: no cover

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"


class OnceTimetable(Timetable):
    """``"@once"``: one run, at ``start_date``."""

    description = "@once"

    def next_run(self, last, *, start_date, end_date, catchup, now):  # type: ignore[override]
        if last is not None or start_date is None:
            return None
        return RunInfo(start_date, DataInterval(start_date, start_date), start_date)


class CronTimetable(Timetable):
    periodic = True

    def __init__(self, expression: str, tz: ZoneInfo):
        self.cron = CronExpression.parse(expression)
        self.tz = tz
        self.description = f"{expression} ({getattr(tz, 'key', tz)})"

    def _next(self, t: datetime) -> datetime:
        return self.cron.next_after(t, self.tz)

    def _prev_or_eq(self, t: datetime) -> datetime:
        return self.cron.prev_at_or_before(t, self.tz)

    def next_run(self, last, *, start_date, end_date, catchup, now):  # type: ignore[override]
        if last is not None:
            start = last.end
        elif start_date is not None:
            start = self._next(start_date - _EPS)
        else:
            return None
        if not catchup:
            # The latest interval that has ended by now; never go back before the earliest candidate.
            latest_end = self._prev_or_eq(now)
            latest_start = self._prev_or_eq(latest_end - _EPS)
            if latest_start > start:
                start = latest_start
        if end_date is not None and start > end_date:
            return None
        end = self._next(start)
        return RunInfo(start, DataInterval(start, end), end)

    def manual_interval(self, logical_date: datetime) -> DataInterval:
        start = self._prev_or_eq(logical_date)
        return DataInterval(start, self._next(start))

    def intervals(self, start: datetime, end: datetime) -> Iterator[DataInterval]:
        t = self._next(start - _EPS)
        while t <= end:
            nxt = self._next(t)
            yield DataInterval(t, nxt)
            t = nxt


class IntervalTimetable(Timetable):
    """A fixed ``timedelta``, anchored at ``start_date`` (in absolute time, unaffected by DST)."""

    periodic = True

    def __init__(self, delta: timedelta):
        if delta <= timedelta(0):
            raise DagDefinitionError(f"schedule interval must be positive, got {delta}")
        self.delta = delta
        self.description = f"every {delta}"

    def _align(self, t: datetime, anchor: datetime) -> datetime:
        k = (t - anchor) // self.delta
        return anchor + k * self.delta

    def next_run(self, last, *, start_date, end_date, catchup, now):  # type: ignore[override]
        if start_date is None:
            return None
        start = last.end if last is not None else start_date
        if not catchup and now - self.delta >= start:
            latest_start = self._align(now, start_date) - self.delta
            if latest_start > start:
                start = latest_start
        if end_date is not None and start > end_date:
            return None
        return RunInfo(start, DataInterval(start, start + self.delta), start + self.delta)

    def manual_interval(self, logical_date: datetime) -> DataInterval:
        return DataInterval(logical_date - self.delta, logical_date)

    def intervals(self, start: datetime, end: datetime) -> Iterator[DataInterval]:
        t = start
        while t <= end:
            yield DataInterval(t, t + self.delta)
            t += self.delta


class DatasetTimetable(Timetable):
    """Runs when the dataset condition holds over the updates queued since the last such run."""

    def __init__(self, condition: DatasetCondition):
        self.condition = condition
        self.description = f"datasets {condition!r}"


def make_timetable(schedule: Any, tz: ZoneInfo, *, where: str = "") -> Timetable:
    """Turn a DAG's ``schedule`` argument into a timetable, with a clear error for bad values."""
    if schedule is None:
        return Timetable()
    if isinstance(schedule, Timetable):
        return schedule
    if isinstance(schedule, str):
        if schedule.strip().lower() == "@once":
            return OnceTimetable()
        try:
            return CronTimetable(schedule, tz)
        except DagDefinitionError as exc:
            raise type(exc)(f"{where}{exc}") from None
    if isinstance(schedule, timedelta):
        try:
            return IntervalTimetable(schedule)
        except DagDefinitionError as exc:
            raise DagDefinitionError(f"{where}{exc}") from None
    if isinstance(schedule, (Dataset, _DatasetBoolean)) or (
        isinstance(schedule, (list, tuple)) and schedule and all(isinstance(s, (Dataset, _DatasetBoolean)) for s in schedule)
    ):
        return DatasetTimetable(as_condition(schedule))
    raise DagDefinitionError(
        f"{where}invalid schedule {schedule!r}: use None, '@once', a cron expression, a timedelta, a Timetable or datasets"
    )
