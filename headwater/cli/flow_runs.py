"""``headwater flow-run``: list, inspect and read the logs of stored flow runs."""

from __future__ import annotations

import datetime
import logging
from typing import TYPE_CHECKING, Any

import click

from headwater.cli.errors import CliError
from headwater.cli.history import with_history
from headwater.cli.output import (
    console,
    duration_text,
    local_time,
    new_table,
    output_option,
    print_json_lines,
    state_text,
)
from headwater.cli.params import TIME
from headwater.cli.runs import (
    canonical_state_names,
    inspect_run,
    state_fields,
    state_filter_options,
)

if TYPE_CHECKING:
    from headwater.cli.history import History
    from headwater.storage import FlowRunRecord, LogEntry

__all__ = ["flow_run", "print_logs"]


@click.group("flow-run")
def flow_run() -> None:
    """Look at flow runs: list them, inspect one, read its logs."""


@flow_run.command("ls")
@state_filter_options
@click.option(
    "--flow", "--flow-name", "flows", multiple=True, help="Only runs of this flow (repeatable)."
)
@click.option("--tag", "tags", multiple=True, help="Only runs carrying this tag (repeatable; all).")
@click.option("--since", type=TIME, help="Only runs created at or after this time (ISO, or 1h).")
@click.option("--until", type=TIME, help="Only runs created at or before this time (ISO, or 1h).")
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="At most this many.",
)
@output_option
def ls(
    states: tuple[str, ...],
    state_types: tuple[str, ...],
    flows: tuple[str, ...],
    tags: tuple[str, ...],
    since: datetime.datetime | None,
    until: datetime.datetime | None,
    limit: int,
    output: str,
) -> None:
    """List flow runs, newest first."""

    async def query(history: History) -> list[FlowRunRecord]:
        return await history.flow_runs(
            state_type=[value.upper() for value in state_types] or None,
            state_name=canonical_state_names(states),
            flow_name=list(flows) or None,
            tags=list(tags) or None,
            since=since,
            until=until,
            limit=limit,
        )

    runs = with_history(query)
    if output == "json":
        print_json_lines(runs)
        return
    table = new_table("ID", "Name", "Flow", "State", "Started", "Duration", "Tags")
    for run in runs:
        table.add_row(
            str(run.id),
            run.name,
            run.flow_name,
            state_text(run.state.type, run.state.name),
            local_time(run.start_time, short=True),
            duration_text(run.start_time, run.end_time),
            ", ".join(run.tags),
        )
    console().print(table)


@flow_run.command("inspect")
@click.argument("flow_run_id", metavar="ID")
@output_option
def inspect(flow_run_id: str, output: str) -> None:
    """Show one flow run and its state history. ID may be a unique prefix."""
    inspect_run("flow-run", flow_run_id, output, _flow_run_fields)


def _flow_run_fields(run: FlowRunRecord) -> list[tuple[str, Any]]:
    version = f" (version {run.flow_version})" if run.flow_version else ""
    return [
        ("ID", str(run.id)),
        ("Name", run.name),
        ("Flow", run.flow_name + version),
        *state_fields(run),
        ("Parameters", _json_text(run.parameters)),
        ("Tags", ", ".join(run.tags)),
        ("Parent", str(run.parent_flow_run_id) if run.parent_flow_run_id else "-"),
        ("Host", f"{run.hostname or '-'} (pid {run.pid or '-'})"),
    ]


def _json_text(value: Any) -> str:
    import msgspec

    return msgspec.json.encode(value).decode()


_LEVEL_NAMES = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
_LEVEL_COLOURS = {"WARNING": "yellow", "ERROR": "red", "CRITICAL": "red"}


def print_logs(entries: list[LogEntry]) -> None:
    """One line per log record: local time, level, logger, message (shared with task runs)."""
    for entry in entries:
        level = logging.getLevelName(entry.level)
        level_text = click.style(f"{level:<8}", fg=_LEVEL_COLOURS.get(level))
        when = local_time(entry.timestamp, precise=True)
        click.echo(f"{when}  {level_text} {entry.name} | {entry.message}")


@flow_run.command("logs")
@click.argument("flow_run_id", metavar="ID")
@click.option(
    "--level",
    type=click.Choice(_LEVEL_NAMES, case_sensitive=False),
    default=None,
    help="Only records at or above this level.",
)
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="At most this many.",
)
@output_option
def logs(flow_run_id: str, level: str | None, limit: int, output: str) -> None:
    """Print the logs of one flow run and its task runs, oldest first. ID may be a prefix."""

    async def query(history: History) -> list[LogEntry]:
        run_id = await history.resolve("flow-run", flow_run_id)
        min_level = logging.getLevelName(level.upper()) if level else None
        return await history.logs(flow_run_id=run_id, min_level=min_level, limit=limit)

    entries = with_history(query)
    if output == "json":
        print_json_lines(entries)
    else:
        print_logs(entries)


@flow_run.command("cancel")
@click.argument("flow_run_id", metavar="ID")
def cancel(flow_run_id: str) -> None:
    """Cancel a flow run. ID may be a prefix.

    A waiting run (Scheduled, Late, Suspended) ends Cancelled at once; a running run of a
    deployment goes Cancelling, and the serve process that launched it stops its process.
    """
    import uuid

    from headwater.deployments.backend import get_backend

    async def query(history: History) -> uuid.UUID:
        return await history.resolve("flow-run", flow_run_id)

    run_id = with_history(query)
    found = get_backend().cancel_run(run_id, "Cancelled from the command line")
    if found is None:
        raise CliError(f"flow run {run_id} has already ended; nothing to cancel")
    click.echo(f"Cancelling flow run {found.name!r} ({run_id}), which was {found.state_name}.")


@flow_run.command("delete")
@click.argument("flow_run_id", metavar="ID")
def delete(flow_run_id: str) -> None:
    """Delete an ended flow run with its task runs, events and logs. ID may be a prefix."""
    from headwater.cli.database import with_database
    from headwater.settings import get_settings
    from headwater.storage.retention import delete_flow_run

    if get_settings().api_url:
        raise CliError("flow-run delete works on the local database; unset HEADWATER_API_URL")

    async def query(history: History) -> Any:
        return await history.resolve("flow-run", flow_run_id)

    run_id = with_history(query)
    removed = with_database(lambda database: delete_flow_run(database, str(run_id)))
    if not removed:
        raise CliError(f"no flow run {run_id}")
    click.echo(f"Deleted flow run {run_id} ({removed - 1} task run(s)).")
