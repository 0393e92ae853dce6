"""``headwater config view``: the settings this process resolved, secrets masked.

Settings are named by their environment variables, since that is how they are set; the
database file the settings lead to is shown too, because it is what people usually want
to know. A secret is shown only as set or unset, never its value, not even in part.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from headwater.cli.output import (
    console,
    new_table,
    output_option,
    period_text,
    print_json_lines,
)

if TYPE_CHECKING:
    from headwater.settings import Settings

__all__ = ["MASK", "config", "setting_values"]

MASK = "********"

# Settings whose variable is not simply HEADWATER_<FIELD>.
_ENV_NAMES = {"task_runner_max_workers": "HEADWATER_TASKS_RUNNER_THREAD_POOL_MAX_WORKERS"}


def _env_name(field: str) -> str:
    return _ENV_NAMES.get(field, f"HEADWATER_{field.upper()}")


def _plain(value: Any) -> Any:
    """A JSON-friendly form; durations as seconds would hide the unit people wrote."""
    from headwater.settings import SecretValue

    if isinstance(value, SecretValue):
        return MASK
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime.timedelta):
        return period_text(value)
    return value


def setting_values(settings: Settings) -> dict[str, Any]:
    """Every setting by its environment variable, secrets replaced by a mask.

    Also ``database`` (the SQLite file in use), which is derived rather than set.
    """
    import msgspec

    from headwater.exceptions import StorageError
    from headwater.storage.sqlite import database_path

    values = {
        _env_name(field.name): _plain(getattr(settings, field.name))
        for field in msgspec.structs.fields(settings)
    }
    try:
        values["database"] = str(database_path(settings))
    except StorageError as exc:  # an unsupported URL: say so rather than fail the whole view
        values["database"] = f"(unusable: {exc})"
    return values


@click.group("config")
def config() -> None:
    """Show headwater's configuration."""


@config.command("view")
@output_option
def view(output: str) -> None:
    """Show the resolved settings (from HEADWATER_* variables and defaults); secrets masked."""
    from headwater.settings import get_settings

    values = setting_values(get_settings())
    if output == "json":
        print_json_lines([values])
        return
    table = new_table("Setting", "Value")
    for name, value in values.items():
        table.add_row(name, "-" if value is None else str(value))
    console().print(table)
