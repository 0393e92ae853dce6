"""``headwater task-run``: list the task runs of a flow run (or all), inspect one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

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
from headwater.cli.runs import (
    canonical_state_names,
    inspect_run,
    state_fields,
    state_filter_options,
)

if TYPE_CHECKING:
    from headwater.cli.history import History
    from headwater.storage import TaskRunRecord

__all__ = ["task_run", "task_runs_table"]


@click.group("task-run")
def task_run() -> None:
    """Look at task runs: list those of a flow run, inspect one."""


def task_runs_table(runs: list[TaskRunRecord], title: str | None = None) -> object:
    """Task runs as a table (also the second half of ``headwater demo``)."""
    table = new_table("ID", "Name", "State", "Tries", "Started", "Duration", title=title)
    for run in runs:
        table.add_row(
            str(run.id),
            run.name,
            state_text(run.state.type, run.state.name),
            str(run.run_count),
            local_time(run.start_time, short=True),
            duration_text(run.start_time, run.end_time),
        )
    return table


@task_run.command("ls")
@click.option(
    "--flow-run",
    "flow_run_id",
    metavar="ID",
    help="Only task runs of this flow run (ID or prefix).",
)
@state_filter_options
@click.option("--flow", "--flow-name", "flows", multiple=True, help="Only task runs of this flow.")
@click.option("--tag", "tags", multiple=True, help="Only task runs carrying this tag (all).")
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="At most this many.",
)
@output_option
def ls(
    flow_run_id: str | None,
    states: tuple[str, ...],
    state_types: tuple[str, ...],
    flows: tuple[str, ...],
    tags: tuple[str, ...],
    limit: int,
    output: str,
) -> None:
    """List task runs, oldest first within a flow run, newest first otherwise."""

    async def query(history: History) -> list[TaskRunRecord]:
        parent = None
        if flow_run_id is not None:
            parent = await history.resolve("flow-run", flow_run_id)
        return await history.task_runs(
            flow_run_id=parent,
            state_type=[value.upper() for value in state_types] or None,
            state_name=canonical_state_names(states),
            flow_name=list(flows) or None,
            tags=list(tags) or None,
            limit=limit,
            # a flow run's tasks read best in the order they started
            order="ASC" if parent is not None else "DESC",
        )

    runs = with_history(query)
    if output == "json":
        print_json_lines(runs)
    else:
        console().print(task_runs_table(runs))


@task_run.command("inspect")
@click.argument("task_run_id", metavar="ID")
@output_option
def inspect(task_run_id: str, output: str) -> None:
    """Show one task run and its state history. ID may be a unique prefix."""
    inspect_run("task-run", task_run_id, output, _task_run_fields)


def _task_run_fields(run: TaskRunRecord) -> list[tuple[str, Any]]:
    return [
        ("ID", str(run.id)),
        ("Name", run.name),
        ("Task", run.task_name or "-"),
        ("Flow run", f"{run.flow_run_id or '-'} ({run.flow_name or '-'})"),
        *state_fields(run),
        ("Tags", ", ".join(run.tags)),
    ]
