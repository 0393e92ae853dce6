"""Schedules: when a deployment's runs are due. Pure: no I/O and no clock.

Three kinds, as in Prefect: :class:`CronSchedule` (croniter), :class:`IntervalSchedule` and
:class:`RRuleSchedule` (dateutil). Each is checked when it is made, so a bad cron string, an
unknown timezone, a non-positive interval or an unparseable rrule fails at definition time
with the value in the message, before anything is stored.

Time-zone rules (Prefect's):

- a cron is wall-clock time in its zone: a daily 02:30 in Europe/Berlin fires once on the
  day the clocks skip 02:30 (at 03:30, the first instant after the gap) and once on the
  day 02:30 happens twice (the first one);
- an interval shorter than a day steps in real time (a 30-minute interval stays 30 real
  minutes across a change); whole days step in calendar days, so a daily interval keeps
  its local clock time;
- an rrule without a zone in its DTSTART is wall-clock time in ``timezone``.

Every generator yields strictly increasing UTC instants, so a DST change never repeats one.
:func:`schedule_key` names a schedule by what it is (or by its slug), so runs keep the same
idempotency keys when a deployment is registered again.
"""

from __future__ import annotations

import datetime
import hashlib
import re
import zoneinfo
from collections.abc import Iterator
from typing import Any

import msgspec

from headwater import durations
from headwater.exceptions import ScheduleValidationError

__all__ = [
    "CronSchedule",
    "IntervalSchedule",
    "RRuleSchedule",
    "ScheduleKind",
    "DeploymentSchedule",
    "Cron",
    "Interval",
    "RRule",
    "Schedule",
    "as_schedule",
    "parse_timezone",
    "run_times",
    "schedule_key",
    "MAX_ITERATIONS",
]

UTC = datetime.timezone.utc
MAX_ITERATIONS = 1000
"""Dates one call computes at most (Prefect's cap for every generator)."""
RRULE_LIMIT = 6500
DEFAULT_ANCHOR = datetime.datetime(2020, 1, 1)
"""Where an interval without an anchor, and an rrule without a DTSTART, start (Prefect's
rrule anchor): naive, so read in the schedule's zone."""


def parse_timezone(name: str | None, where: str) -> zoneinfo.ZoneInfo:
    """The IANA zone ``name`` (None: UTC); a clear error naming the value otherwise."""
    if name is None:
        return zoneinfo.ZoneInfo("UTC")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ScheduleValidationError(
            f"{where}: unknown timezone {name!r}; expected an IANA name like 'Europe/Berlin'"
        ) from None


def _localize(naive: datetime.datetime, zone: zoneinfo.ZoneInfo) -> datetime.datetime:
    """The UTC instant of wall-clock ``naive`` in ``zone``.

    A time that does not exist (skipped by a spring-forward change) becomes the first
    instant after the gap at the same distance, as the clock would show it; a time that
    happens twice is its first occurrence.
    """
    # fold=0 reads a time inside a gap with the offset before the change, which lands
    # after the gap (02:30 CET = 03:30 CEST), and a repeated time as its first occurrence
    return naive.replace(tzinfo=zone, fold=0).astimezone(UTC)


class CronSchedule(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="cron"):
    """A cron expression in a timezone (None: UTC).

    Attributes:
        cron: five fields (or six with seconds), as croniter reads them.
        timezone: an IANA name; the cron is wall-clock time there.
        day_or: when both day-of-month and day-of-week are given, run on either (True, cron's
            rule) or only on days matching both (False).
    """

    cron: str
    timezone: str | None = None
    day_or: bool = True

    def __post_init__(self) -> None:
        from croniter import croniter

        text = self.cron.strip() if isinstance(self.cron, str) else self.cron
        if not isinstance(text, str) or not text:
            raise ScheduleValidationError(f"cron: expected a cron string, got {self.cron!r}")
        if re.search(r"(^|\s)[RH](\s|$|\()", text):
            raise ScheduleValidationError(
                f"cron {self.cron!r}: random (R) and hashed (H) fields are not supported"
            )
        if not croniter.is_valid(text):
            raise ScheduleValidationError(
                f"cron {self.cron!r} is not a valid cron expression; expected five fields"
                " 'minute hour day-of-month month day-of-week', e.g. '0 3 * * *'"
            )
        parse_timezone(self.timezone, f"cron {self.cron!r}")


class IntervalSchedule(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="interval"):
    """Every ``interval`` from ``anchor_date``.

    Attributes:
        interval: a positive duration.
        anchor_date: a moment the schedule passes through (naive: read in ``timezone``).
        timezone: the zone whole days are counted in (None: the anchor's, else UTC).
    """

    interval: datetime.timedelta
    anchor_date: datetime.datetime
    timezone: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.interval, datetime.timedelta) or self.interval <= datetime.timedelta(
            0
        ):
            raise ScheduleValidationError(
                f"interval: expected a positive duration, got {self.interval!r}"
            )
        parse_timezone(self.timezone, f"interval {self.interval}")

    def zone(self) -> zoneinfo.ZoneInfo:
        return parse_timezone(self.timezone, "interval")

    def anchor(self) -> datetime.datetime:
        """The anchor as an aware datetime (a naive one read in the schedule's zone)."""
        if self.anchor_date.tzinfo is None:
            return _localize(self.anchor_date, self.zone())
        return self.anchor_date.astimezone(UTC)


class RRuleSchedule(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="rrule"):
    """An RFC 5545 recurrence rule, as dateutil reads it.

    Attributes:
        rrule: e.g. ``"FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9"``, optionally with a DTSTART line
            (without one the rule starts at 2020-01-01 00:00 in ``timezone``).
        timezone: the zone of a DTSTART without one (default UTC).
    """

    rrule: str
    timezone: str | None = "UTC"

    def __post_init__(self) -> None:
        if not isinstance(self.rrule, str) or not self.rrule.strip():
            raise ScheduleValidationError(f"rrule: expected a recurrence rule, got {self.rrule!r}")
        if len(self.rrule) > RRULE_LIMIT:
            raise ScheduleValidationError(
                f"rrule: {len(self.rrule)} characters, at most {RRULE_LIMIT} are accepted"
            )
        parse_timezone(self.timezone, f"rrule {self.rrule!r}")
        self.rule()

    def rule(self) -> Any:
        from dateutil.rrule import rrulestr

        try:
            return rrulestr(self.rrule, dtstart=DEFAULT_ANCHOR, cache=False, forceset=True)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ScheduleValidationError(
                f"rrule {self.rrule!r} is not a valid recurrence rule: {exc}"
            ) from None


ScheduleKind = CronSchedule | IntervalSchedule | RRuleSchedule


class DeploymentSchedule(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One schedule of a deployment, with its own parameters and on/off switch (Prefect's
    ``Schedule``/``DeploymentSchedule``).

    Attributes:
        schedule: the cron, interval or rrule.
        active: whether it makes runs. None (the default) keeps what is stored when the
            deployment is registered again, and means True for a new schedule: a redeploy
            never re-activates a schedule someone paused.
        parameters: merged over the deployment's for the runs it makes.
        slug: a stable name; without one the schedule is known by its definition.
    """

    schedule: ScheduleKind
    active: bool | None = None
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    slug: str | None = None

    @property
    def is_active(self) -> bool:
        return self.active is not False


Schedule = DeploymentSchedule
"""Prefect's name (``prefect.schedules.Schedule``)."""


def Cron(
    cron: str,
    /,
    timezone: str | None = None,
    day_or: bool = True,
    active: bool | None = None,
    parameters: dict[str, Any] | None = None,
    slug: str | None = None,
) -> DeploymentSchedule:
    """A cron schedule, e.g. ``Cron("0 3 * * *", timezone="Europe/Berlin")``."""
    return DeploymentSchedule(
        schedule=CronSchedule(cron, timezone, day_or),
        active=active,
        parameters=dict(parameters or {}),
        slug=slug,
    )


def _duration(value: Any, where: str) -> datetime.timedelta:
    if isinstance(value, datetime.timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.timedelta(seconds=value)
    raise ScheduleValidationError(
        f"{where}: expected seconds (a number) or a timedelta, got {value!r}"
    )


def Interval(
    interval: datetime.timedelta | float,
    /,
    anchor_date: datetime.datetime | None = None,
    timezone: str | None = None,
    active: bool | None = None,
    parameters: dict[str, Any] | None = None,
    slug: str | None = None,
) -> DeploymentSchedule:
    """Every ``interval`` (seconds or a timedelta) from ``anchor_date``.

    The default anchor is 2020-01-01 00:00 in ``timezone`` (Prefect's is "now"): a fixed
    anchor keeps the run times, and so their idempotency keys, the same every time the
    schedule is defined again, and puts a 30-minute interval on :00 and :30.
    """
    if anchor_date is None:
        anchor_date = DEFAULT_ANCHOR
    if timezone is None and anchor_date.tzinfo is not None:
        key = getattr(anchor_date.tzinfo, "key", None)
        timezone = key if isinstance(key, str) else "UTC"
    return DeploymentSchedule(
        schedule=IntervalSchedule(_duration(interval, "interval"), anchor_date, timezone),
        active=active,
        parameters=dict(parameters or {}),
        slug=slug,
    )


def RRule(
    rrule: str,
    /,
    timezone: str | None = None,
    active: bool | None = None,
    parameters: dict[str, Any] | None = None,
    slug: str | None = None,
) -> DeploymentSchedule:
    """A recurrence rule, e.g. ``RRule("FREQ=WEEKLY;BYDAY=MO;BYHOUR=9", timezone="UTC")``."""
    return DeploymentSchedule(
        schedule=RRuleSchedule(rrule, timezone or "UTC"),
        active=active,
        parameters=dict(parameters or {}),
        slug=slug,
    )


def as_schedule(value: Any) -> DeploymentSchedule:
    """A :class:`DeploymentSchedule` from what ``schedules=[...]`` accepts: one, a bare
    cron/interval/rrule schedule, or a dict (Prefect's and ``headwater.yaml``'s form)."""
    if isinstance(value, DeploymentSchedule):
        return value
    if isinstance(value, (CronSchedule, IntervalSchedule, RRuleSchedule)):
        return DeploymentSchedule(schedule=value)
    if isinstance(value, dict):
        return _from_dict(value)
    raise ScheduleValidationError(
        "schedules: expected Cron(...), Interval(...), RRule(...) or a dict with one of"
        f" 'cron', 'interval', 'rrule', got {value!r}"
    )


def _from_dict(value: dict[str, Any]) -> DeploymentSchedule:
    data = dict(value)
    if "schedule" in data:
        try:
            return msgspec.convert(data, DeploymentSchedule)
        except msgspec.ValidationError as exc:
            raise ScheduleValidationError(f"schedule {value!r}: {exc}") from None
    kinds = [kind for kind in ("cron", "interval", "rrule") if data.get(kind) is not None]
    if len(kinds) != 1:
        raise ScheduleValidationError(
            f"schedule {value!r}: expected exactly one of 'cron', 'interval', 'rrule'"
        )
    common = {
        key: data.pop(key) for key in ("active", "parameters", "slug") if data.get(key) is not None
    }
    allowed = {"cron": {"timezone", "day_or"}, "interval": {"anchor_date", "timezone"}}.get(
        kinds[0], {"timezone"}
    )
    extra = set(data) - allowed - {kinds[0]}
    if extra:
        raise ScheduleValidationError(
            f"schedule {value!r}: unknown field(s) {sorted(extra)} for a {kinds[0]} schedule"
        )
    if kinds[0] == "cron":
        return Cron(data["cron"], data.get("timezone"), data.get("day_or", True), **common)
    if kinds[0] == "rrule":
        return RRule(data["rrule"], data.get("timezone"), **common)
    interval = data["interval"]
    if isinstance(interval, str):
        interval = parse_duration(interval, "interval")
    anchor = data.get("anchor_date")
    if isinstance(anchor, str):
        try:
            anchor = datetime.datetime.fromisoformat(anchor)
        except ValueError:
            raise ScheduleValidationError(
                f"anchor_date {anchor!r}: expected an ISO-8601 date and time"
            ) from None
    return Interval(interval, anchor, data.get("timezone"), **common)


def parse_duration(text: str, where: str) -> datetime.timedelta:
    """A duration as people type it (:mod:`headwater.durations`), or a clear error naming
    ``where`` it was given."""
    try:
        return durations.parse_duration(text)
    except ValueError:
        raise ScheduleValidationError(
            f"{where} {text!r}: expected a duration like {durations.DURATION_FORMS}"
        ) from None


def schedule_key(deployment_schedule: DeploymentSchedule) -> str:
    """A stable name for a schedule: its slug, or a digest of what it is.

    Runs a schedule makes are keyed by this (with the deployment and the time), so the
    same schedule registered again, by a restarted serve or a second process, makes the
    same keys; ``active`` is not part of it.
    """
    if deployment_schedule.slug:
        return f"slug:{deployment_schedule.slug}"
    identity = msgspec.json.encode(
        {"schedule": deployment_schedule.schedule, "parameters": deployment_schedule.parameters},
        order="sorted",
    )
    return "sha1:" + hashlib.sha1(identity, usedforsecurity=False).hexdigest()[:16]


def run_times(
    schedule: ScheduleKind,
    start: datetime.datetime,
    end: datetime.datetime,
    limit: int = MAX_ITERATIONS,
) -> list[datetime.datetime]:
    """The UTC instants in ``[start, end)`` when ``schedule`` is due, at most ``limit``."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("run_times takes aware datetimes")
    found: list[datetime.datetime] = []
    last: datetime.datetime | None = None
    for moment in _iterate(schedule, start.astimezone(UTC)):
        if moment >= end or len(found) >= min(limit, MAX_ITERATIONS):
            break
        if last is not None and moment <= last:
            continue  # never twice, never backwards (DST)
        found.append(moment)
        last = moment
    return found


def _iterate(schedule: ScheduleKind, start: datetime.datetime) -> Iterator[datetime.datetime]:
    if isinstance(schedule, CronSchedule):
        return _cron_times(schedule, start)
    if isinstance(schedule, IntervalSchedule):
        return _interval_times(schedule, start)
    return _rrule_times(schedule, start)


def _cron_times(schedule: CronSchedule, start: datetime.datetime) -> Iterator[datetime.datetime]:
    from croniter import croniter

    zone = parse_timezone(schedule.timezone, "cron")
    # Step through wall-clock times: croniter on naive local times, each made an instant.
    # Start one second early so a time exactly at ``start`` is included.
    local = (start - datetime.timedelta(seconds=1)).astimezone(zone).replace(tzinfo=None)
    iterator = croniter(schedule.cron.strip(), local, day_or=schedule.day_or)
    for _ in range(MAX_ITERATIONS * 2):
        moment = _localize(iterator.get_next(datetime.datetime), zone)
        if moment >= start:
            yield moment


def _interval_times(
    schedule: IntervalSchedule, start: datetime.datetime
) -> Iterator[datetime.datetime]:
    interval = schedule.interval
    anchor = schedule.anchor()
    whole_days = interval.days if interval.seconds == 0 and interval.microseconds == 0 else 0
    if not whole_days:
        # real time: anchor + k * interval, the first k landing at or after start
        steps = 0 if start <= anchor else -(-(start - anchor) // interval)
        moment = anchor + steps * interval
        while True:
            yield moment
            moment += interval
    zone = schedule.zone()
    anchor_local = anchor.astimezone(zone).replace(tzinfo=None)
    step = datetime.timedelta(days=whole_days)
    steps = 0 if start <= anchor else max(0, (start - anchor) // step - 1)
    while True:
        moment = _localize(anchor_local + steps * step, zone)
        if moment >= start:
            yield moment
        steps += 1


def _rrule_times(schedule: RRuleSchedule, start: datetime.datetime) -> Iterator[datetime.datetime]:
    rule = schedule.rule()
    zone = parse_timezone(schedule.timezone, "rrule")
    dtstart = None
    for item in getattr(rule, "_rrule", []):
        dtstart = item._dtstart
        break
    if dtstart is not None and dtstart.tzinfo is not None:
        moment = rule.after(start - datetime.timedelta(microseconds=1), inc=False)
        while moment is not None:
            yield moment.astimezone(UTC)
            moment = rule.after(moment, inc=False)
        return
    local = (start - datetime.timedelta(seconds=1)).astimezone(zone).replace(tzinfo=None)
    moment = rule.after(local, inc=False)
    while moment is not None:
        instant = _localize(moment, zone)
        if instant >= start:
            yield instant
        moment = rule.after(moment, inc=False)
