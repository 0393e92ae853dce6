"""``headwater artifact``: list and inspect the artifacts runs published.

Reads the local database directly. Keys have versions: ``ls`` shows every artifact, newest
first; ``inspect KEY`` shows each version of one key with its data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from headwater.cli.errors import CliUsageError
from headwater.cli.output import console, local_time, new_table, output_option, print_json_lines

if TYPE_CHECKING:
    from headwater.artifacts.store import Artifact

__all__ = ["artifact"]

_PREVIEW = 60


def _read(key: str | None = None, flow_run: str | None = None, limit: int = 100) -> list[Artifact]:
    from headwater.artifacts.store import check_key, list_artifacts
    from headwater.exceptions import InvalidArtifactError
    from headwater.settings import get_settings
    from headwater.storage.sqlite import database_path
    from headwater.storage.sync_connection import get_sync_connection

    try:
        check_key(key)
    except InvalidArtifactError as exc:
        raise CliUsageError(str(exc)) from None
    if flow_run is not None:
        flow_run = flow_run.strip().removeprefix("headwater.flow-run.")
    if not database_path(get_settings()).exists():
        return []
    with get_sync_connection().read() as connection:
        return list_artifacts(connection, key=key, flow_run_id=flow_run, limit=limit)


def _preview(data: object) -> str:
    text = data if isinstance(data, str) else f"{data:g}%" if isinstance(data, float) else str(data)
    text = " ".join(text.split())
    return text if len(text) <= _PREVIEW else text[: _PREVIEW - 1] + "…"


@click.group("artifact")
def artifact() -> None:
    """List and inspect artifacts (markdown, tables, links, images, progress)."""


@artifact.command("ls")
@click.option("--key", help="Only the versions of this key.")
@click.option(
    "--flow-run", "flow_run", metavar="ID", help="Only those of this flow run (id or prefix)."
)
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@output_option
def list_command(key: str | None, flow_run: str | None, limit: int, output: str) -> None:
    """List artifacts, newest first."""
    found = _read(key, flow_run, limit)
    if output == "json":
        print_json_lines(found)
        return
    table = new_table("ID", "Key", "Type", "Data", "Flow run", "Created")
    for item in found:
        table.add_row(
            str(item.id),
            item.key or "-",
            item.type,
            _preview(item.data),
            str(item.flow_run_id)[:8] if item.flow_run_id else "-",
            local_time(item.created, short=True),
        )
    console().print(table)


@artifact.command("inspect")
@click.argument("key")
@click.option("--limit", type=click.IntRange(min=1), default=10, show_default=True)
@output_option
def inspect(key: str, limit: int, output: str) -> None:
    """Show the versions of artifact KEY, newest first, with their data."""
    found = _read(key, None, limit)
    if not found:
        raise CliUsageError(f"no artifact with key {key!r}")
    if output == "json":
        print_json_lines(found)
        return
    out = console()
    for number, item in enumerate(found):
        label = "latest" if number == 0 else "older"
        out.print(f"[bold]{item.key}[/bold]  {item.type}  ({label}, {item.id})")
        out.print(f"  created      {local_time(item.created)}")
        if item.updated != item.created:
            out.print(f"  updated      {local_time(item.updated)}")
        out.print(f"  flow run     {item.flow_run_id or '-'}")
        out.print(f"  task run     {item.task_run_id or '-'}")
        if item.description:
            out.print(f"  description  {item.description}", markup=False)
        out.print(f"  data         {item.data}", markup=False)
