"""``headwater demo``: the README's example flow (fan-out, a retry, a failure), watched live.

The events are printed by a lossless consumer on the bus while the flow runs; the table
at the end is read back from the database (the same rows ``headwater flow-run ls`` shows),
which proves that history was recorded, not just observed.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO

import click

from headwater.cli.database import with_database
from headwater.cli.errors import CliError
from headwater.cli.output import STATE_STYLES, duration_text, new_table, state_text
from headwater.cli.output import console as output_console
from headwater.events.schema import Event

if TYPE_CHECKING:
    from headwater.events.schema import Event
    from headwater.storage import Database, FlowRunRecord, TaskRunRecord

__all__ = ["demo", "event_line", "main", "show_demo"]


def event_line(event: Event) -> Any:
    """One live event: local time, event name, run name; coloured by the new state's type."""
    from rich.text import Text

    state_type = event.resource.get("headwater.state-type", "")
    name = event.resource.get("headwater.resource.name") or event.resource_id
    clock = event.occurred.astimezone().strftime("%H:%M:%S.%f")[:-3]
    return Text(f"{clock}  {event.event:<36} {name}", style=STATE_STYLES.get(state_type, ""))


def _runs_table(flow_run: FlowRunRecord, task_runs: list[TaskRunRecord]) -> Any:
    from rich.text import Text

    table = new_table("Run", "State", "Tries", "Duration", "Message")
    message = table.columns[-1]
    # a summary, one line per run; `flow-run inspect` shows the whole message
    message.no_wrap, message.overflow, message.max_width = True, "ellipsis", 30
    runs: list[FlowRunRecord | TaskRunRecord] = [flow_run, *task_runs]
    for run in runs:
        state = run.state
        is_flow = run is flow_run
        table.add_row(
            Text(run.name, style="bold") if is_flow else Text(f"  {run.name}"),
            state_text(state.type, state.name),
            str(run.run_count),
            duration_text(run.start_time, run.end_time),
            "" if state.type == "COMPLETED" else (state.message or ""),
        )
    return table


def show_demo(out: TextIO | None = None) -> int:
    """Run the demo flow with persistence on, print its events live, then its stored runs.

    Args:
        out: where to print (stdout by default).

    Returns:
        0 (the demo's failure is part of the demo: one source is broken on purpose).

    Raises:
        StorageError: the database cannot be opened.
        CliError: the runs were not found in the database after the flow returned.
    """
    from headwater.cli.demo_flow import run_demo
    from headwater.settings import get_settings
    from headwater.storage import ensure_persistence, read_flow_run, read_task_runs

    if not get_settings().events_enabled:
        raise CliError("the demo shows run events, and HEADWATER_EVENTS_ENABLED is false")
    console = output_console(out)
    # Persistence subscribes before the first event, so the whole run is stored; the flow
    # call commits its events before it returns.
    ensure_persistence()
    console.print("headwater demo: live run events\n", markup=False)
    flow_run_id = run_demo(lambda event: console.print(event_line(event)))
    if flow_run_id is None:
        raise CliError("the demo flow published no flow run events")

    async def query(database: Database) -> tuple[FlowRunRecord | None, list[TaskRunRecord]]:
        detail = await read_flow_run(database, flow_run_id, log_limit=0)
        tasks = await read_task_runs(database, flow_run_id=flow_run_id, order="ASC", limit=1000)
        return (detail.run if detail else None), tasks

    flow_run, task_runs = with_database(query)
    if flow_run is None:
        raise CliError(f"flow run {flow_run_id} is not in the database after it finished")
    console.print()
    console.print(_runs_table(flow_run, task_runs))
    console.print(
        f"Inspect it: headwater flow-run inspect {flow_run_id}", markup=False, soft_wrap=True
    )
    return 0


@click.command("demo")
def demo() -> None:
    """Run an example async flow (fan-out, a retry, a failure) and watch it live.

    Prints each run event as it happens, then the flow run and its task runs as stored in
    the database. Works on a fresh HEADWATER_HOME (the database is created).
    """
    show_demo()


def main(out: TextIO | None = None) -> int:
    """Run the demo, printing every event as it happens, then the runs from the database.

    The same as ``headwater demo``, for ``python -m headwater.demo`` (the README's command).
    """
    from headwater.cli.errors import exit_code_for, message_for

    try:
        return show_demo(out)
    except Exception as exc:
        code = exit_code_for(exc)
        if code is None:
            raise
        print(message_for(exc), file=sys.stderr)
        return code
