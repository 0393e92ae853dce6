"""``headwater db``: maintenance of the run history database."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

import click

from headwater.cli.database import with_database
from headwater.cli.output import (
    console,
    new_table,
    output_option,
    period_text,
    print_json_lines,
)
from headwater.cli.params import DURATION

if TYPE_CHECKING:
    from headwater.storage import Database, PruneResult

__all__ = ["db"]

_TABLES = ("flow_runs", "task_runs", "events", "event_resources", "logs")


@click.group("db")
def db() -> None:
    """Maintain the run history database."""


@db.command("prune")
@click.option(
    "--older-than",
    type=DURATION,
    required=True,
    help="Remove what is older than this: 7d, 12h, 30m, 2w.",
)
@output_option
def prune(older_than: datetime.timedelta, output: str) -> None:
    """Remove runs, state history, events and logs older than --older-than; print the counts.

    Runs that are still changing state are kept. Safe while flows are running: the work
    is done in small transactions.
    """
    from headwater.storage import prune as prune_database

    async def work(database: Database) -> tuple[str, PruneResult]:
        return str(database.path), await prune_database(database, older_than)

    path, result = with_database(work)
    if output == "json":
        counts = {table: getattr(result, table) for table in _TABLES}
        print_json_lines([{**counts, "total": result.total}])
        return
    if not result.total:
        click.echo(f"Nothing older than {period_text(older_than)} in {path}; nothing removed.")
        return
    rows = "row" if result.total == 1 else "rows"
    click.echo(f"Removed {result.total} {rows} older than {period_text(older_than)} from {path}:")
    table = new_table("Table", "Rows removed")
    for name in _TABLES:
        table.add_row(name, str(getattr(result, name)))
    table.add_row("total", str(result.total))
    console().print(table)
