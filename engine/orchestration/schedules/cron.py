"""A small cron parser and a timezone-aware, DST-correct next-fire computation.

Five fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12 or JAN-DEC), day of week
(0-7 or SUN-SAT; 0 and 7 are Sunday). Each field is ``*``, a value, a range ``a-b``, a step ``*/n`` or
``a-b/n`` or ``a/n`` (from a to the field's maximum), or a comma-separated list of those. Aliases:
``@yearly``/``@annually``, ``@monthly``, ``@weekly``, ``@daily``/``@midnight``, ``@hourly``. As in Vixie
cron, when both day-of-month and day-of-week are restricted a day matches if *either* matches.

Times are matched on the wall clock of the schedule's timezone, and DST is handled the way Airflow (and
PEP 495) users expect:

- **Nonexistent local times** (spring forward): a fire time that falls in the gap runs at the same
  wall-clock offset *after* the jump, i.e. shifted forward by the gap length. A daily ``30 2 * * *`` in
  Europe/Berlin runs at 03:30 CEST on the last Sunday of March (once, as on every other day).
- **Ambiguous local times** (fall back): a fire time that occurs twice runs once, at its first
  occurrence (the DST one, ``fold=0``). Only an expression with an unrestricted hour field (it fires
  every hour, e.g. ``@hourly`` or ``*/15 * * * *``) also fires in the repeated hour, so that it keeps
  its fixed rhythm in absolute time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone as dt_timezone
from zoneinfo import ZoneInfo

from engine.orchestration.exceptions import CronSyntaxError

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {n: i + 1 for i, n in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())}
_DAYS = {n: i for i, n in enumerate("SUN MON TUE WED THU FRI SAT".split())}
_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # max (leap) lengths


def _value(text: str, name: str, lo: int, hi: int, names: dict[str, int], expr: str) -> int:
    key = text.upper()
    if key in names:
        return names[key]
    if not text.isdigit():
        raise CronSyntaxError(f"cron {expr!r}: invalid {name} value {text!r}")
    v = int(text)
    if not lo <= v <= hi:
        raise CronSyntaxError(f"cron {expr!r}: {name} value {v} is out of range {lo}-{hi}")
    return v


def _parse_field(text: str, name: str, lo: int, hi: int, names: dict[str, int], expr: str) -> tuple[frozenset[int], bool]:
    """The set of values of one field and whether it is unrestricted (``*``)."""
    values: set[int] = set()
    star = False
    for part in text.split(","):
        if not part:
            raise CronSyntaxError(f"cron {expr!r}: empty list item in the {name} field {text!r}")
        step = 1
        if "/" in part:
            part, _, step_text = part.partition("/")
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronSyntaxError(f"cron {expr!r}: invalid step {step_text!r} in the {name} field")
            step = int(step_text)
        if part == "*":
            start, end = lo, hi
            star = star or step == 1
        elif "-" in part:
            a, _, b = part.partition("-")
            start = _value(a, name, lo, hi, names, expr)
            end = _value(b, name, lo, hi, names, expr)
            if end < start:
                raise CronSyntaxError(f"cron {expr!r}: range {part!r} in the {name} field runs backwards")
        else:
            start = _value(part, name, lo, hi, names, expr)
            end = hi if step != 1 else start
        values.update(range(start, end + 1, step))
    return frozenset(values), star


@dataclass(frozen=True)
class CronExpression:
    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    dom_star: bool
    dow_star: bool
    hour_star: bool

    @classmethod
    def parse(cls, expression: str) -> "CronExpression":
        if not isinstance(expression, str) or not expression.strip():
            raise CronSyntaxError(f"cron expression must be a non-empty string, got {expression!r}")
        text = ALIASES.get(expression.strip().lower(), expression.strip())
        if text.startswith("@"):
            raise CronSyntaxError(f"cron {expression!r}: unknown alias; known: {', '.join(sorted(ALIASES))}")
        parts = text.split()
        if len(parts) != 5:
            raise CronSyntaxError(
                f"cron {expression!r}: expected 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}"
            )
        parsed = [_parse_field(p, *spec, expression) for p, spec in zip(parts, _FIELDS)]
        (minutes, _), (hours, hour_star), (days, dom_star), (months, _), (weekdays, dow_star) = parsed
        weekdays = frozenset(0 if d == 7 else d for d in weekdays)
        if dom_star is False and dow_star:
            longest = max(_DAYS_IN_MONTH[m - 1] for m in months)
            if min(days) > longest:
                raise CronSyntaxError(f"cron {expression!r}: day {min(days)} never occurs in the selected month(s)")
        return cls(expression, tuple(sorted(minutes)), tuple(sorted(hours)), days, months, weekdays, dom_star, dow_star, hour_star)

    def _day_matches(self, d: date) -> bool:
        if d.month not in self.months:
            return False
        dom = d.day in self.days
        dow = (d.isoweekday() % 7) in self.weekdays
        if self.dom_star and self.dow_star:
            return True
        if self.dom_star:
            return dow
        if self.dow_star:
            return dom
        return dom or dow  # both restricted: either one (Vixie cron)

    def next_after(self, after: datetime, tz: ZoneInfo) -> datetime:
        """The first fire time strictly after ``after`` (aware), as an aware datetime in ``tz``."""
        if after.tzinfo is None:
            raise ValueError("next_after needs an aware datetime")
        local = after.astimezone(tz)
        day = local.date() - timedelta(days=1)  # a gap-shifted time of the previous day may still be ahead
        horizon = day + timedelta(days=366 * 8)
        after_utc = after.astimezone(dt_timezone.utc)
        while day <= horizon:
            if self._day_matches(day):
                best = None
                for hour in self.hours:
                    if best is not None and hour > best.astimezone(tz).hour:
                        break  # wall times only shift forward, so a later hour cannot fire earlier
                    for minute in self.minutes:
                        instants = self._instants(day, hour, minute, tz)
                        for instant in instants:
                            # Compare in UTC: aware datetimes sharing a tzinfo compare by wall time.
                            utc = instant.astimezone(dt_timezone.utc)
                            if utc > after_utc and (best is None or utc < best):
                                best = utc
                        if instants[0].astimezone(dt_timezone.utc) > after_utc:
                            break  # later minutes of this hour come after this one
                if best is not None:
                    return best.astimezone(tz)
            day += timedelta(days=1)
        raise CronSyntaxError(f"cron {self.expression!r} does not fire within 8 years after {after.isoformat()}")

    def prev_at_or_before(self, at: datetime, tz: ZoneInfo) -> datetime:
        """The last fire time at or before ``at`` (aware), as an aware datetime in ``tz``."""
        at_utc = at.astimezone(dt_timezone.utc)
        day = at.astimezone(tz).date() + timedelta(days=1)
        horizon = day - timedelta(days=366 * 8)
        while day >= horizon:
            if self._day_matches(day):
                best = None
                for hour in reversed(self.hours):
                    for minute in reversed(self.minutes):
                        for instant in self._instants(day, hour, minute, tz):
                            utc = instant.astimezone(dt_timezone.utc)
                            if utc <= at_utc and (best is None or utc > best):
                                best = utc
                    if best is not None and hour < best.astimezone(tz).hour - 3:
                        break  # gap shifts are at most a few hours; earlier hours cannot be later
                if best is not None:
                    return best.astimezone(tz)
            day -= timedelta(days=1)
        raise CronSyntaxError(f"cron {self.expression!r} did not fire within 8 years before {at.isoformat()}")

    def _instants(self, day: date, hour: int, minute: int, tz: ZoneInfo) -> list[datetime]:
        naive = datetime(day.year, day.month, day.day, hour, minute)
        first = naive.replace(tzinfo=tz, fold=0)
        second = naive.replace(tzinfo=tz, fold=1)
        if first.utcoffset() == second.utcoffset():
            return [first]  # a normal wall time
        roundtrip = first.astimezone(dt_timezone.utc).astimezone(tz).replace(tzinfo=None)
        if roundtrip != naive:
            # Nonexistent (in the spring-forward gap): fold=0 interprets it with the pre-transition
            # offset, which lands the gap length later on the wall clock (02:30 -> 03:30).
            return [first]
        # Ambiguous (fall back): the first occurrence; the repeated hour too for every-hour schedules.
        return [first, second] if self.hour_star else [first]

    def __str__(self) -> str:
        return self.expression
