"""Printing results: rich tables for people, JSON lines for programs.

Every listing takes ``--output table|json``. ``json`` writes one JSON object per line,
the msgspec encoding of the record structs (so field names are the structs' and stay
stable; times are ISO-8601 in UTC), ready for ``jq`` or a line-by-line reader. ``table``
shows times in local time and colours states by their type.

rich is imported only when a table is printed: ``headwater --help`` and ``--output json``
never pay for it.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import click
import msgspec

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

__all__ = [
    "STATE_STYLES",
    "console",
    "duration_text",
    "local_time",
    "new_table",
    "output_option",
    "period_text",
    "print_json_lines",
    "state_text",
]

F = TypeVar("F", bound=Callable[..., Any])

STATE_STYLES = {
    "COMPLETED": "green",
    "FAILED": "red",
    "CRASHED": "magenta",
    "CANCELLED": "bright_black",
    "CANCELLING": "bright_black",
    "RUNNING": "cyan",
    "SCHEDULED": "yellow",
    "PAUSED": "yellow",
    "PENDING": "dim",
}

_encoder = msgspec.json.Encoder()
_PIPE_WIDTH = 200
_NO_WRAP = frozenset({"State", "Type", "Started", "Duration", "Tries", "Occurred", "Time"})


def output_option(function: F) -> F:
    """Add ``--output table|json`` to a command (passed as ``output``)."""
    return click.option(
        "--output",
        "-o",
        type=click.Choice(["table", "json"], case_sensitive=False),
        default="table",
        show_default=True,
        help="table for people; json for one JSON object per line, for piping.",
    )(function)


def print_json_lines(records: Iterable[Any]) -> None:
    """Write each record as one line of JSON on stdout."""
    for record in records:
        click.echo(_encoder.encode(record).decode())


def console(file: Any = None) -> Console:
    """A console on ``file``, by default the current stdout (so it follows redirection and
    test runners).

    Colours follow rich's detection: plain text when the output is not a terminal.
    """
    from rich.console import Console

    out = Console(file=file, highlight=False, soft_wrap=False)
    if not out.is_terminal:
        # Piped or redirected: rich would assume 80 columns and fold every cell; a file or a
        # pager reads better with whole rows.
        out.width = max(out.width, _PIPE_WIDTH)
    return out


def new_table(*columns: str, title: str | None = None) -> Table:
    """A table in the house style.

    Short, fixed-form columns (ids, states, times, counts) never wrap, so ids stay
    copyable and times readable; free text (names, messages) folds instead.
    """
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    for column in columns:
        if column == "ID":
            table.add_column(column, no_wrap=True, min_width=36)
        elif column in _NO_WRAP:
            table.add_column(column, no_wrap=True)
        else:
            table.add_column(column, overflow="fold", min_width=min(len(column), 8))
    return table


def state_text(state_type: str, name: str) -> Any:
    """A state name coloured by its type, for a table cell."""
    from rich.text import Text

    return Text(name, style=STATE_STYLES.get(state_type, ""))


def local_time(
    moment: datetime.datetime | None, *, precise: bool = False, short: bool = False
) -> str:
    """A time in the reader's local zone.

    Args:
        moment: the time (aware); None shows as ``-``.
        precise: add milliseconds (events, state history).
        short: for listings: only the clock for today, no seconds for other days, so the
            column stays narrow.
    """
    if moment is None:
        return "-"
    local = moment.astimezone()
    if short:
        today = datetime.datetime.now().astimezone().date()
        return local.strftime("%H:%M:%S" if local.date() == today else "%Y-%m-%d %H:%M")
    if precise:
        return local.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return local.strftime("%Y-%m-%d %H:%M:%S")


def duration_text(start: datetime.datetime | None, end: datetime.datetime | None) -> str:
    """How long a run took, in a compact human form (``1.25s``, ``3m 07s``), or ``-``."""
    if start is None or end is None:
        return "-"
    seconds = (end - start).total_seconds()
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def period_text(value: datetime.timedelta) -> str:
    """A period in the units people write it in (``7d``, ``12h``, ``90s``)."""
    seconds = value.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
