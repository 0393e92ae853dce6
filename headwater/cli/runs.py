"""What ``flow-run`` and ``task-run`` share: state filters, and the ``inspect`` view."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import click

from headwater.cli.errors import CliUsageError
from headwater.cli.history import with_history
from headwater.cli.output import (
    console,
    duration_text,
    local_time,
    new_table,
    print_json_lines,
    state_text,
)
from headwater.engine.states import StateType

if TYPE_CHECKING:
    from headwater.cli.history import History
    from headwater.storage import FlowRunRecord, StateRecord, TaskRunRecord

__all__ = [
    "STATE_TYPES",
    "canonical_state_names",
    "fields_table",
    "inspect_run",
    "state_fields",
    "state_filter_options",
    "state_history_table",
]

STATE_TYPES: tuple[str, ...] = tuple(state_type.value for state_type in StateType)
_STATE_NAMES = {
    name.lower(): name
    for name in [
        "Scheduled",
        "Late",
        "AwaitingRetry",
        "AwaitingConcurrencySlot",
        "Resuming",
        "Pending",
        "Submitting",
        "InfrastructurePending",
        "NotReady",
        "Running",
        "Retrying",
        "Rerunning",
        "Paused",
        "Suspended",
        "Cancelling",
        "Cancelled",
        "Completed",
        "Cached",
        "RolledBack",
        "Failed",
        "TimedOut",
        "Crashed",
    ]
}


def canonical_state_names(names: tuple[str, ...]) -> list[str] | None:
    """State names as stored (``timedout`` → ``TimedOut``), so people need not remember case."""
    if not names:
        return None
    return [_STATE_NAMES.get(name.lower(), name) for name in names]


def state_filter_options(function: Any) -> Any:
    """``--state`` and ``--state-type``, shared by flow-run and task-run listings."""
    function = click.option(
        "--state-type",
        "state_types",
        multiple=True,
        type=click.Choice(STATE_TYPES, case_sensitive=False),
        help="Only runs whose state has this type (repeatable; OR-ed).",
    )(function)
    return click.option(
        "--state",
        "states",
        multiple=True,
        metavar="NAME",
        help="Only runs in this state, by name: Completed, Failed, TimedOut, Retrying... "
        "(case-insensitive; repeatable; OR-ed).",
    )(function)


def state_history_table(states: list[StateRecord]) -> Any:
    """A run's states, oldest first, as a table (shared with ``task-run inspect``)."""
    table = new_table("Time", "State", "Type", "Message", title="State history")
    for state in states:
        table.add_row(
            local_time(state.timestamp, precise=True),
            state_text(state.type, state.name),
            state.type,
            state.message or "",
        )
    return table


def fields_table(rows: list[tuple[str, Any]]) -> Any:
    """A two-column grid of labelled values (the top of an ``inspect``)."""
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for label, value in rows:
        grid.add_row(label, value)
    return grid


def state_fields(run: FlowRunRecord | TaskRunRecord) -> list[tuple[str, Any]]:
    """The rows every run's ``inspect`` shows about where it stands and how long it took."""
    return [
        ("State", state_text(run.state.type, run.state.name)),
        ("Message", run.state.message or ""),
        ("Attempts", str(run.run_count)),
        ("Started", local_time(run.start_time)),
        ("Ended", local_time(run.end_time)),
        ("Duration", duration_text(run.start_time, run.end_time)),
    ]


def inspect_run(
    kind: Literal["flow-run", "task-run"],
    run_id_text: str,
    output: str,
    fields: Callable[[Any], list[tuple[str, Any]]],
) -> None:
    """Show one run (``ID`` may be a unique prefix): its ``fields``, then its state history.

    Raises:
        CliUsageError: no run of ``kind`` has that id (or the prefix is ambiguous).
    """

    async def query(history: History) -> Any:
        run_id = await history.resolve(kind, run_id_text)
        read = history.flow_run if kind == "flow-run" else history.task_run
        found = await read(run_id)
        if found is None:  # pruned between the two reads
            raise CliUsageError(f"no {kind.replace('-', ' ')} with id '{run_id_text}'")
        return found

    detail = with_history(query)
    if output == "json":
        print_json_lines([{"run": detail.run, "states": detail.states}])
        return
    out = console()
    out.print(fields_table(fields(detail.run)))
    out.print()
    out.print(state_history_table(detail.states))
