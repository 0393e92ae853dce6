"""Durations as people type them: ``"90"``, ``"30d"``, ``"1h 30m"``, ``"5 minutes"``,
``"PT10M"``, ``"01:30:00"``. Pure; the one parser settings, schedules and the CLI share."""

from __future__ import annotations

import datetime
import re

__all__ = ["DURATION_FORMS", "parse_duration"]

DURATION_FORMS = "'90' (seconds), '10m', '1h 30m', '2 days', 'PT10M' or '01:30:00'"
"""What the error messages say is accepted."""

_PART = re.compile(
    r"(\d+(?:\.\d+)?)\s*(weeks?|w|days?|d|hours?|h|minutes?|mins?|m|seconds?|secs?|s)"
)
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_ISO = re.compile(r"p(?:(\d+)d)?(?:t(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?)?")


def parse_duration(text: str) -> datetime.timedelta:
    """The duration ``text`` says.

    Raises:
        ValueError: it is not a duration, naming the value and the accepted forms.
    """
    value = text.strip().lower() if isinstance(text, str) else ""
    try:
        if re.fullmatch(r"\d+(\.\d+)?", value):
            return datetime.timedelta(seconds=float(value))
        if re.fullmatch(r"\d+:\d{1,2}:\d{1,2}", value):
            hours, minutes, secs = (int(part) for part in value.split(":"))
            return datetime.timedelta(hours=hours, minutes=minutes, seconds=secs)
        iso = _ISO.fullmatch(value)
        if iso and any(iso.groups()):
            day_text, hour_text, minute_text, second_text = iso.groups()
            return datetime.timedelta(
                days=int(day_text or 0),
                hours=int(hour_text or 0),
                minutes=int(minute_text or 0),
                seconds=float(second_text or 0),
            )
        parts = _PART.findall(value)
        if parts and _PART.sub("", value).strip(" ,and") == "":
            total = sum(float(number) * _UNITS[unit[0]] for number, unit in parts)
            return datetime.timedelta(seconds=total)
    except OverflowError:
        pass
    raise ValueError(f"{text!r} is not a duration; expected {DURATION_FORMS}")
