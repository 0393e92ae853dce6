"""Option value types shared by the commands: points in time, durations, JSON.

Each is a :class:`click.ParamType`, so a bad value fails during parsing, with click's
"Invalid value for '--since': ..." naming the option, and exit code 2. The parsing itself is
in plain functions (:func:`parse_time`) that take the clock as an argument, for tests.
"""

from __future__ import annotations

import datetime
from typing import Any

import click
import msgspec

from headwater.settings import parse_duration

__all__ = [
    "DURATION",
    "JSON_LABELS",
    "JSON_OBJECT",
    "JSON_RELATED",
    "TIME",
    "DurationType",
    "JsonType",
    "TimeType",
    "parse_time",
]

_TIME_HELP = (
    "an ISO time (2024-05-01T12:00, local unless it has an offset or Z) or an age like 30m, 1h, 7d"
)


def parse_time(text: str, now: datetime.datetime) -> datetime.datetime:
    """Read an absolute ISO time or a relative age (``1h`` means one hour before ``now``).

    People type times in their own zone, so an ISO time without an offset is local time;
    the result is always timezone-aware (UTC when relative).

    Raises:
        ValueError: ``text`` is neither; the message says what is accepted.
    """
    value = text.strip()
    if value.lower() == "now":
        return now
    try:
        return now - parse_duration(value.removeprefix("-"))
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(
            value.replace("Z", "+00:00").replace("z", "+00:00")
        )
    except ValueError:
        raise ValueError(f"{text!r} is not a time; expected {_TIME_HELP}") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # a naive time is the user's local time
    return moment


class TimeType(click.ParamType):
    """An absolute or relative point in time (see :func:`parse_time`)."""

    name = "TIME"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime.datetime:
        if isinstance(value, datetime.datetime):
            return value
        try:
            return parse_time(str(value), datetime.datetime.now(datetime.timezone.utc))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class DurationType(click.ParamType):
    """A positive duration such as ``7d``, ``12h``, ``30m``, ``45s`` or ``2w``."""

    name = "DURATION"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime.timedelta:
        if isinstance(value, datetime.timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class JsonType(click.ParamType):
    """JSON text decoded and checked against a type, so a wrong shape fails like bad JSON.

    Args:
        type_: what the decoded value must be, e.g. ``dict[str, Any]``.
        what: how the expected value is described in help and errors.
    """

    name = "JSON"

    def __init__(self, type_: Any, what: str) -> None:
        self.type_ = type_
        self.what = what

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, (str, bytes)):
            return value
        try:
            return msgspec.json.decode(value, type=self.type_)
        except msgspec.ValidationError as exc:
            self.fail(f"expected {self.what}: {exc}", param, ctx)
        except msgspec.DecodeError as exc:
            self.fail(f"not valid JSON: {exc}", param, ctx)


TIME = TimeType()
DURATION = DurationType()
JSON_OBJECT = JsonType(dict[str, Any], "a JSON object")
JSON_LABELS = JsonType(dict[str, str], "a JSON object of string labels")
JSON_RELATED = JsonType(
    list[dict[str, str]] | dict[str, str],
    "a JSON object of string labels, or a list of them",
)
