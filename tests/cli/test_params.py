"""Option value parsing: times (absolute and relative), JSON shapes."""

from __future__ import annotations

import datetime

import pytest

from headwater.cli.params import parse_time

NOW = datetime.datetime(2024, 5, 8, 12, 0, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", NOW - datetime.timedelta(hours=1)),
        ("30m", NOW - datetime.timedelta(minutes=30)),
        ("7d", NOW - datetime.timedelta(days=7)),
        ("-2w", NOW - datetime.timedelta(weeks=2)),
        ("now", NOW),
        ("2024-05-01T10:00:00Z", datetime.datetime(2024, 5, 1, 10, tzinfo=datetime.timezone.utc)),
        (
            "2024-05-01T10:00:00+02:00",
            datetime.datetime(2024, 5, 1, 8, tzinfo=datetime.timezone.utc),
        ),
    ],
)
def test_parse_time(text: str, expected: datetime.datetime) -> None:
    assert parse_time(text, NOW) == expected


def test_a_naive_time_is_local() -> None:
    parsed = parse_time("2024-05-01T10:00", NOW)
    assert parsed.tzinfo is not None
    assert parsed == datetime.datetime(2024, 5, 1, 10).astimezone()


@pytest.mark.parametrize("text", ["", "yesterday", "1x", "2024-13-01", "0m"])
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="is not a time"):
        parse_time(text, NOW)
