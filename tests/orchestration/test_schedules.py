"""Cron parsing, DST-correct next-run computation, timetables, catchup and the serving scheduler."""

from __future__ import annotations

import asyncio
import random
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings, strategies as st

from engine.orchestration import DAG, CronExpression, CronSyntaxError, FakeClock, Task
from engine.orchestration.schedules import CronTimetable, DataInterval, IntervalTimetable

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def fires(expr: str, start: datetime, n: int, tz=UTC) -> list[datetime]:
    c = CronExpression.parse(expr)
    out, t = [], start
    for _ in range(n):
        t = c.next_after(t, tz)
        out.append(t)
    return out


def test_fields_ranges_steps_lists_and_names():
    c = CronExpression.parse("*/15 9-17/4 1,15 JAN-MAR mon-fri")
    assert c.minutes == (0, 15, 30, 45)
    assert c.hours == (9, 13, 17)
    assert c.days == {1, 15} and c.months == {1, 2, 3} and c.weekdays == {1, 2, 3, 4, 5}
    assert CronExpression.parse("0 0 * * 7").weekdays == {0}  # 7 is Sunday too
    assert CronExpression.parse("5/20 * * * *").minutes == (5, 25, 45)
    assert CronExpression.parse("@daily") == CronExpression.parse("@daily")
    assert CronExpression.parse("@hourly").minutes == (0,)


def test_aliases_fire_where_expected():
    start = datetime(2024, 1, 10, 12, 34, tzinfo=UTC)
    assert fires("@hourly", start, 1) == [datetime(2024, 1, 10, 13, 0, tzinfo=UTC)]
    assert fires("@daily", start, 1) == [datetime(2024, 1, 11, tzinfo=UTC)]
    assert fires("@weekly", start, 1) == [datetime(2024, 1, 14, tzinfo=UTC)]  # a Sunday
    assert fires("@monthly", start, 1) == [datetime(2024, 2, 1, tzinfo=UTC)]
    assert fires("@yearly", start, 1) == [datetime(2025, 1, 1, tzinfo=UTC)]


def test_day_of_month_or_day_of_week_when_both_restricted():
    # the 13th, or any Friday (Vixie cron semantics)
    got = fires("0 0 13 * FRI", datetime(2024, 9, 1, tzinfo=UTC), 4)
    assert [d.day for d in got] == [6, 13, 20, 27]


def test_leap_day_and_impossible_dates():
    assert fires("0 0 29 2 *", datetime(2024, 3, 1, tzinfo=UTC), 1) == [datetime(2028, 2, 29, tzinfo=UTC)]
    with pytest.raises(CronSyntaxError, match="day 30 never occurs"):
        CronExpression.parse("0 0 30 2 *")


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("* * * *", "expected 5 fields"),
        ("60 * * * *", "minute value 60 is out of range 0-59"),
        ("* 24 * * *", "hour value 24"),
        ("* * 0 * *", "day of month value 0"),
        ("* * * 13 *", "month value 13"),
        ("* * * * 8", "day of week value 8"),
        ("*/0 * * * *", "invalid step"),
        ("5-1 * * * *", "runs backwards"),
        ("1,,2 * * * *", "empty list item"),
        ("* * * FOO *", "invalid month value 'FOO'"),
        ("@fortnightly", "unknown alias"),
        ("", "non-empty"),
    ],
)
def test_invalid_expressions_say_what_is_wrong(expr, message):
    with pytest.raises(CronSyntaxError, match=message):
        CronExpression.parse(expr)


def _brute_next(c: CronExpression, after: datetime) -> datetime | None:
    t = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for _ in range(60 * 24 * 3):
        if (t.minute in c.minutes and t.hour in c.hours and c._day_matches(t.date())):
            return t
        t += timedelta(minutes=1)
    return None


field_item = st.one_of(
    st.just("*"),
    st.integers(0, 59).map(str),
    st.tuples(st.integers(0, 30), st.integers(30, 59)).map(lambda p: f"{p[0]}-{p[1]}"),
    st.integers(1, 20).map(lambda s: f"*/{s}"),
)


@settings(max_examples=150, deadline=None)
@given(
    minute=st.lists(field_item, min_size=1, max_size=3).map(",".join),
    hour=st.sampled_from(["*", "0", "3,15", "*/5", "8-18", "23"]),
    dow=st.sampled_from(["*", "MON-FRI", "0", "6,0"]),
    start_minutes=st.integers(0, 60 * 24 * 366 * 2),
)
def test_next_after_matches_a_minute_by_minute_scan_in_utc(minute, hour, dow, start_minutes):
    expr = f"{minute} {hour} * * {dow}"
    c = CronExpression.parse(expr)
    after = datetime(2023, 1, 1, tzinfo=UTC) + timedelta(minutes=start_minutes, seconds=17)
    want = _brute_next(c, after)
    got = c.next_after(after, UTC)
    if want is None:
        assert got > after + timedelta(days=3)
    else:
        assert got == want, (expr, after)


# -- DST ----------------------------------------------------------------------------------------


def _gaps(instants):
    utc = [i.astimezone(UTC) for i in instants]
    return [b - a for a, b in zip(utc, utc[1:])]


def _local_days(instants):
    return [i.astimezone(BERLIN).date() for i in instants]


def test_daily_0230_across_spring_forward_runs_once_per_day_at_0330():
    got = fires("30 2 * * *", datetime(2024, 3, 29, tzinfo=BERLIN), 4, BERLIN)
    assert _local_days(got) == [date(2024, 3, 29), date(2024, 3, 30), date(2024, 3, 31), date(2024, 4, 1)]
    walls = [(g.astimezone(BERLIN).hour, g.astimezone(BERLIN).minute) for g in got]
    # 02:30 does not exist on 2024-03-31 in Berlin: it runs at 03:30 CEST (01:30 UTC), shifted by the gap.
    assert walls == [(2, 30), (2, 30), (3, 30), (2, 30)]
    assert got[2].astimezone(UTC) == datetime(2024, 3, 31, 1, 30, tzinfo=UTC)
    # elapsed real time (in UTC: aware datetimes sharing a tzinfo subtract by wall clock)
    assert _gaps(got) == [timedelta(hours=24), timedelta(hours=24), timedelta(hours=23)]


def test_daily_0230_across_fall_back_runs_once_at_the_first_occurrence():
    got = fires("30 2 * * *", datetime(2024, 10, 26, tzinfo=BERLIN), 3, BERLIN)
    assert _local_days(got) == [date(2024, 10, 26), date(2024, 10, 27), date(2024, 10, 28)]
    # 02:30 happens twice on 2024-10-27: the run is at the first one (CEST, 00:30 UTC), not again at 01:30 UTC.
    assert got[1].astimezone(UTC) == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)
    assert _gaps(got) == [timedelta(hours=24), timedelta(hours=25)]


def test_hourly_keeps_its_rhythm_through_both_transitions():
    spring = fires("@hourly", datetime(2024, 3, 31, tzinfo=BERLIN), 24, BERLIN)
    assert len({s.astimezone(UTC) for s in spring}) == 24
    assert set(_gaps(spring)) == {timedelta(hours=1)}
    fall = fires("0 * * * *", datetime(2024, 10, 27, tzinfo=BERLIN), 25, BERLIN)
    assert set(_gaps(fall)) == {timedelta(hours=1)}
    assert _local_days(fall).count(date(2024, 10, 27)) == 24  # the day has 25 hours; 24 start after midnight


def test_new_york_spring_forward():
    got = fires("30 2 * * *", datetime(2024, 3, 9, tzinfo=NEW_YORK), 3, NEW_YORK)
    assert [g.astimezone(NEW_YORK).strftime("%d %H:%M %Z") for g in got] == ["09 02:30 EST", "10 03:30 EDT", "11 02:30 EDT"]


def test_prev_at_or_before_is_the_inverse_of_next_after():
    c = CronExpression.parse("30 2 * * *")
    rng = random.Random(7)
    print("seed", 7)
    for _ in range(50):
        t = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(60 * 24 * 366))
        prev = c.prev_at_or_before(t, BERLIN)
        assert prev <= t and c.next_after(prev, BERLIN) > t


# -- timetables -----------------------------------------------------------------------------------


def test_cron_timetable_data_intervals_and_catchup():
    tt = CronTimetable("0 0 * * *", UTC)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    now = datetime(2024, 1, 5, 12, tzinfo=UTC)
    first = tt.next_run(None, start_date=start, end_date=None, catchup=True, now=now)
    assert first.logical_date == start and first.data_interval == DataInterval(start, start + timedelta(days=1))
    assert first.run_after == start + timedelta(days=1)  # the run for a day starts once the day is over
    # catchup off: jump to the latest complete interval (Jan 4)
    latest = tt.next_run(None, start_date=start, end_date=None, catchup=False, now=now)
    assert latest.logical_date == datetime(2024, 1, 4, tzinfo=UTC)
    nxt = tt.next_run(latest.data_interval, start_date=start, end_date=None, catchup=False, now=now)
    assert nxt.logical_date == datetime(2024, 1, 5, tzinfo=UTC) and nxt.run_after > now
    assert tt.next_run(latest.data_interval, start_date=start, end_date=datetime(2024, 1, 4, 1, tzinfo=UTC),
                       catchup=True, now=now) is None
    assert tt.manual_interval(datetime(2024, 1, 3, 15, tzinfo=UTC)) == DataInterval(
        datetime(2024, 1, 3, tzinfo=UTC), datetime(2024, 1, 4, tzinfo=UTC))


def test_interval_timetable_is_anchored_at_start_date():
    tt = IntervalTimetable(timedelta(hours=6))
    start = datetime(2024, 1, 1, 1, tzinfo=UTC)
    now = datetime(2024, 1, 2, 2, tzinfo=UTC)
    info = tt.next_run(None, start_date=start, end_date=None, catchup=False, now=now)
    assert info.data_interval == DataInterval(datetime(2024, 1, 1, 19, tzinfo=UTC), datetime(2024, 1, 2, 1, tzinfo=UTC))
    assert [i.start.hour for i in tt.intervals(start, start + timedelta(hours=12))] == [1, 7, 13]


async def _serve_until(s, predicate, timeout=60.0):
    stop = asyncio.Event()
    server = asyncio.ensure_future(s.serve(stop))
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            assert not server.done(), server.exception()
            assert asyncio.get_running_loop().time() < deadline, "serve() did not get there in time"
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await server


async def test_serving_a_daily_0230_berlin_schedule_through_a_dst_year(scheduler_factory):
    logical_dates = []

    def record(context):
        logical_dates.append(context.logical_date)

    with DAG("dst", schedule="30 2 * * *", timezone="Europe/Berlin", start_date=datetime(2024, 3, 29),
             end_date=datetime(2024, 10, 29), catchup=True) as d:
        Task("t", record)
    clock = FakeClock(datetime(2024, 3, 29, tzinfo=UTC))
    s = scheduler_factory(d, clock=clock)
    expected_runs = (date(2024, 10, 29) - date(2024, 3, 29)).days + 1
    await _serve_until(s, lambda: len([r for r in s.store.list_runs("dst") if r.state == "success"]) >= expected_runs - 1)
    runs = s.store.list_runs("dst")
    days = [r.logical_date.astimezone(BERLIN).date() for r in runs]
    assert len(days) == len(set(days)), "a local day ran twice"
    assert days[:4] == [date(2024, 3, 29), date(2024, 3, 30), date(2024, 3, 31), date(2024, 4, 1)]
    assert date(2024, 10, 27) in days and date(2024, 10, 28) in days
    by_day = {r.logical_date.astimezone(BERLIN).date(): r for r in runs}
    assert by_day[date(2024, 3, 31)].logical_date.astimezone(BERLIN).strftime("%H:%M %Z") == "03:30 CEST"
    assert by_day[date(2024, 10, 27)].logical_date.astimezone(UTC) == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)
    # each run covers exactly [this fire, next fire)
    for r in runs:
        assert r.interval_start == r.logical_date and r.interval_end > r.interval_start
    assert all(r.run_type == "scheduled" for r in runs)


async def test_catchup_off_runs_only_the_latest_interval(scheduler_factory):
    with DAG("nocatch", schedule="@daily", start_date=datetime(2024, 1, 1), catchup=False) as d:
        Task("t", lambda: None)
    clock = FakeClock(datetime(2024, 1, 10, 6, tzinfo=UTC))
    s = scheduler_factory(d, clock=clock)
    await _serve_until(s, lambda: any(r.state == "success" for r in s.store.list_runs("nocatch")))
    runs = s.store.list_runs("nocatch")
    assert runs[0].logical_date == datetime(2024, 1, 9, tzinfo=UTC)
    assert all(r.logical_date >= datetime(2024, 1, 9, tzinfo=UTC) for r in runs)


class FrozenClock(FakeClock):
    """Time stands still: sleeping yields briefly without moving ``now()``."""

    async def sleep(self, seconds):
        self.sleeps.append(seconds)
        await asyncio.sleep(0.005)


async def test_scheduled_runs_are_not_duplicated_after_a_restart(tmp_path, scheduler_factory):
    with DAG("restart", schedule="@daily", start_date=datetime(2024, 1, 1), catchup=True) as d:
        Task("t", lambda: None)
    db = tmp_path / "m.db"
    s1 = scheduler_factory(d, store=db, clock=FrozenClock(datetime(2024, 1, 4, 1, tzinfo=UTC)))
    await _serve_until(s1, lambda: len(s1.store.list_runs("restart", states=["success"])) == 3)
    await s1.close()
    s2 = scheduler_factory(d, store=db, clock=FrozenClock(datetime(2024, 1, 5, 1, tzinfo=UTC)))
    await _serve_until(s2, lambda: len(s2.store.list_runs("restart", states=["success"])) == 4)
    assert [r.logical_date.day for r in s2.store.list_runs("restart")] == [1, 2, 3, 4]


async def test_manual_runs_get_the_interval_containing_their_date_or_an_explicit_one(scheduler_factory):
    seen = []

    def record(context):
        seen.append((context.data_interval_start, context.data_interval_end))

    with DAG("manual_intervals", schedule="0 6 * * *", start_date=datetime(2024, 1, 1)) as d:
        Task("t", record)
    s = scheduler_factory(d)
    await s.run_dag(d, logical_date=datetime(2024, 2, 10, 12, tzinfo=UTC))
    explicit = DataInterval(datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 2, 8, tzinfo=UTC))
    await s.run_dag(d, logical_date=datetime(2024, 2, 11, tzinfo=UTC), data_interval=explicit)
    assert seen == [
        (datetime(2024, 2, 10, 6, tzinfo=UTC), datetime(2024, 2, 11, 6, tzinfo=UTC)),
        (explicit.start, explicit.end),
    ]
