"""Schedule maths: pinned DST dates, the three kinds, bad input, stable keys."""

from __future__ import annotations

import datetime
import itertools
import zoneinfo

import pytest

from headwater.deployments.schedules import (
    Cron,
    DeploymentSchedule,
    Interval,
    RRule,
    as_schedule,
    parse_duration,
    run_times,
    schedule_key,
)
from headwater.exceptions import ScheduleValidationError

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
UTC = datetime.timezone.utc
# 2026: clocks go forward on 29 March (02:00 → 03:00) and back on 25 October (03:00 → 02:00)
SPRING = datetime.date(2026, 3, 29)
AUTUMN = datetime.date(2026, 10, 25)


def _local(moments: list[datetime.datetime]) -> list[str]:
    return [m.astimezone(BERLIN).strftime("%Y-%m-%d %H:%M %Z") for m in moments]


def _day_window(day: datetime.date, days: int = 1) -> tuple[datetime.datetime, datetime.datetime]:
    start = datetime.datetime.combine(day, datetime.time(), BERLIN)
    return start, start + datetime.timedelta(days=days)


@pytest.mark.parametrize("day", [SPRING, AUTUMN])
def test_a_daily_0230_cron_in_berlin_runs_exactly_once_on_each_dst_change_day(
    day: datetime.date,
) -> None:
    schedule = Cron("30 2 * * *", timezone="Europe/Berlin").schedule
    start, _ = _day_window(day)
    times = run_times(schedule, start, start + datetime.timedelta(hours=23, minutes=59))
    assert len(times) == 1
    if day == SPRING:
        # 02:30 does not exist that day: the run happens at the first instant after the gap
        assert _local(times) == ["2026-03-29 03:30 CEST"]
    else:
        # 02:30 happens twice: the first one
        assert _local(times) == ["2026-10-25 02:30 CEST"]


def test_a_daily_cron_keeps_its_local_clock_time_on_both_sides_of_a_change() -> None:
    schedule = Cron("0 9 * * *", timezone="Europe/Berlin").schedule
    start, end = _day_window(datetime.date(2026, 3, 27), days=4)
    assert _local(run_times(schedule, start, end)) == [
        "2026-03-27 09:00 CET",
        "2026-03-28 09:00 CET",
        "2026-03-29 09:00 CEST",
        "2026-03-30 09:00 CEST",
    ]


def test_an_hourly_cron_skips_the_missing_hour_and_never_repeats_the_doubled_one() -> None:
    schedule = Cron("0 * * * *", timezone="Europe/Berlin").schedule
    spring = run_times(schedule, *_day_window(SPRING))
    autumn = run_times(schedule, *_day_window(AUTUMN))
    assert len(spring) == 23 and "2026-03-29 02:00" not in " ".join(_local(spring))
    assert len(autumn) == 24  # wall-clock hours 0..23, the repeated 02:00 once
    assert len(set(autumn)) == len(autumn)


@pytest.mark.parametrize("day", [SPRING, AUTUMN])
def test_a_30_minute_interval_stays_30_real_minutes_across_a_change(day: datetime.date) -> None:
    schedule = Interval(1800, timezone="Europe/Berlin").schedule
    start, end = _day_window(day)
    times = run_times(schedule, start, end)
    gaps = {(later - earlier).total_seconds() for earlier, later in itertools.pairwise(times)}
    assert gaps == {1800.0}
    hours = 23 if day == SPRING else 25  # the day's real length
    assert len(times) == hours * 2


def test_a_daily_interval_keeps_its_local_clock_time() -> None:
    anchor = datetime.datetime(2026, 3, 1, 9, 0)  # naive: read in the schedule's zone
    schedule = Interval(datetime.timedelta(days=1), anchor, "Europe/Berlin").schedule
    start, end = _day_window(datetime.date(2026, 3, 28), days=3)
    assert _local(run_times(schedule, start, end)) == [
        "2026-03-28 09:00 CET",
        "2026-03-29 09:00 CEST",
        "2026-03-30 09:00 CEST",
    ]


def test_an_interval_without_an_anchor_lands_on_round_times() -> None:
    schedule = Interval(900).schedule
    start = datetime.datetime(2026, 1, 1, 10, 7, 13, tzinfo=UTC)
    times = run_times(schedule, start, start + datetime.timedelta(hours=1))
    assert [t.strftime("%H:%M:%S") for t in times] == [
        "10:15:00",
        "10:30:00",
        "10:45:00",
        "11:00:00",
    ]


def test_an_rrule_without_a_dtstart_zone_is_wall_clock_time_in_its_timezone() -> None:
    schedule = RRule("FREQ=DAILY;BYHOUR=9;BYMINUTE=0", timezone="Europe/Berlin").schedule
    start, end = _day_window(datetime.date(2026, 3, 28), days=3)
    assert _local(run_times(schedule, start, end)) == [
        "2026-03-28 09:00 CET",
        "2026-03-29 09:00 CEST",
        "2026-03-30 09:00 CEST",
    ]


def test_an_rrule_with_a_utc_dtstart_stays_in_utc() -> None:
    schedule = RRule("DTSTART:20260101T120000Z\nRRULE:FREQ=WEEKLY;BYDAY=MO").schedule
    start = datetime.datetime(2026, 3, 1, tzinfo=UTC)
    times = run_times(schedule, start, start + datetime.timedelta(days=14))
    assert [t.isoformat() for t in times] == [
        "2026-03-02T12:00:00+00:00",
        "2026-03-09T12:00:00+00:00",
    ]


def test_run_times_includes_a_time_exactly_at_the_start_and_excludes_the_end() -> None:
    schedule = Cron("0 * * * *").schedule
    start = datetime.datetime(2026, 1, 1, 10, tzinfo=UTC)
    times = run_times(schedule, start, start + datetime.timedelta(hours=2))
    assert [t.hour for t in times] == [10, 11]


def test_run_times_honours_the_limit() -> None:
    schedule = Cron("* * * * *").schedule
    start = datetime.datetime(2026, 1, 1, tzinfo=UTC)
    assert len(run_times(schedule, start, start + datetime.timedelta(days=1), limit=5)) == 5


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: Cron("61 * * * *"), "'61 * * * *' is not a valid cron expression"),
        (lambda: Cron("every day"), "'every day' is not a valid cron expression"),
        (lambda: Cron("H * * * *"), "hashed (H)"),
        (lambda: Cron("0 3 * * *", timezone="Mars/Olympus"), "unknown timezone 'Mars/Olympus'"),
        (lambda: Interval(0), "expected a positive duration"),
        (lambda: Interval(-5), "expected a positive duration"),
        (lambda: Interval("soon"), "expected seconds"),
        (lambda: RRule("FREQ=SOMETIMES"), "'FREQ=SOMETIMES' is not a valid recurrence rule"),
        (lambda: RRule("FREQ=DAILY", timezone="Nowhere/Land"), "unknown timezone 'Nowhere/Land'"),
        (lambda: RRule("FREQ=DAILY;" + "BYHOUR=1;" * 1000), "at most 6500"),
    ],
)
def test_a_bad_schedule_fails_at_definition_naming_the_value(make, fragment: str) -> None:
    with pytest.raises(ScheduleValidationError) as caught:
        make()
    assert fragment in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_a_schedule_is_known_by_its_definition_not_by_when_it_was_made() -> None:
    assert schedule_key(Cron("0 3 * * *")) == schedule_key(Cron("0 3 * * *"))
    assert schedule_key(Interval(60)) == schedule_key(Interval(60))
    # the on/off switch is not part of what a schedule is
    assert schedule_key(Cron("0 3 * * *", active=False)) == schedule_key(Cron("0 3 * * *"))
    # different timing, zone or parameters are different schedules
    assert schedule_key(Cron("0 3 * * *")) != schedule_key(Cron("0 4 * * *"))
    assert schedule_key(Cron("0 3 * * *", timezone="Europe/Berlin")) != schedule_key(
        Cron("0 3 * * *")
    )
    assert schedule_key(Cron("0 3 * * *", parameters={"a": 1})) != schedule_key(Cron("0 3 * * *"))
    # a slug names it whatever its definition
    assert schedule_key(Cron("0 3 * * *", slug="nightly")) == schedule_key(
        Cron("0 4 * * *", slug="nightly")
    )


def test_schedules_from_dicts_as_prefect_and_headwater_yaml_write_them() -> None:
    cron = as_schedule({"cron": "0 3 * * *", "timezone": "Europe/Berlin", "slug": "nightly"})
    assert cron.schedule.cron == "0 3 * * *" and cron.slug == "nightly"
    interval = as_schedule({"interval": "PT10M", "parameters": {"x": 1}})
    assert interval.schedule.interval == datetime.timedelta(minutes=10)
    assert interval.parameters == {"x": 1}
    assert as_schedule({"interval": 90}).schedule.interval == datetime.timedelta(seconds=90)
    assert isinstance(as_schedule(Cron("0 3 * * *")), DeploymentSchedule)
    with pytest.raises(ScheduleValidationError, match="exactly one of"):
        as_schedule({"cron": "0 3 * * *", "interval": 60})
    with pytest.raises(ScheduleValidationError, match="unknown field"):
        as_schedule({"cron": "0 3 * * *", "anchor_date": "2026-01-01T00:00"})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("10m", 600),
        ("1h 30m", 5400),
        ("2 days", 172800),
        ("PT10M", 600),
        ("01:30:00", 5400),
        ("5 minutes", 300),
    ],
)
def test_durations_people_type(text: str, seconds: float) -> None:
    assert parse_duration(text, "--start-in").total_seconds() == seconds


def test_a_duration_that_is_not_one_says_what_is_accepted() -> None:
    with pytest.raises(ScheduleValidationError, match="expected a duration like"):
        parse_duration("tomorrowish", "--start-in")
