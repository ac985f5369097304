"""Time schedules: cron expressions and timetables (data intervals, catchup, DST)."""

from engine.orchestration.schedules.cron import CronExpression
from engine.orchestration.schedules.timetables import (
    CronTimetable,
    DataInterval,
    DatasetTimetable,
    IntervalTimetable,
    OnceTimetable,
    RunInfo,
    Timetable,
    make_timetable,
)

__all__ = [
    "CronExpression",
    "CronTimetable",
    "DataInterval",
    "DatasetTimetable",
    "IntervalTimetable",
    "OnceTimetable",
    "RunInfo",
    "Timetable",
    "make_timetable",
]
