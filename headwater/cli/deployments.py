"""``headwater deployment`` and ``headwater flow``: deployments, their runs, and flows.

A deployment is named ``'<flow name>/<deployment name>'`` (or by its id). ``run`` creates a
run that a serve process of the deployment starts at once; ``--watch`` follows it to its
final state (exit status 0 when it Completed, 1 otherwise).
"""

from __future__ import annotations

import datetime
import json
import sys
from typing import TYPE_CHECKING, Any

import click

from headwater.cli.errors import CliError
from headwater.cli.output import (
    console,
    local_time,
    new_table,
    output_option,
    period_text,
    print_json_lines,
)

if TYPE_CHECKING:
    from headwater.deployments.model import DeploymentDefinition
    from headwater.deployments.runs import RunRow

__all__ = ["deployment", "flow"]


@click.group("deployment")
def deployment() -> None:
    """Manage deployments: list, inspect, run, pause, resume, delete."""


def _schedule_text(item: Any) -> str:
    from headwater.deployments.schedules import CronSchedule, IntervalSchedule

    schedule = item.schedule
    if isinstance(schedule, CronSchedule):
        text = f"cron {schedule.cron!r}"
    elif isinstance(schedule, IntervalSchedule):
        text = f"every {period_text(schedule.interval)}"
    else:
        text = f"rrule {schedule.rrule!r}"
    zone = getattr(schedule, "timezone", None)
    if zone and zone != "UTC":
        text += f" ({zone})"
    if item.active is False:
        text += " [inactive]"
    return text


def _summary(item: DeploymentDefinition) -> dict[str, Any]:
    import msgspec

    data = msgspec.to_builtins(item)
    data["full_name"] = item.full_name
    return data


@deployment.command("ls")
@click.option("--flow", "flow_name", help="Only deployments of this flow.")
@output_option
def ls(flow_name: str | None, output: str) -> None:
    """List deployments, by flow and name."""
    from headwater.deployments.backend import get_backend

    items = get_backend().deployments(flow_name)
    if output == "json":
        print_json_lines(_summary(item) for item in items)
        return
    if not items:
        click.echo("No deployments.")
        return
    table = new_table("Name", "Schedules", "Paused", "Id")
    for item in items:
        schedules = "; ".join(_schedule_text(s) for s in item.schedules) or "-"
        table.add_row(item.full_name, schedules, "yes" if item.paused else "no", str(item.id))
    console().print(table)


@deployment.command("inspect")
@click.argument("name")
@output_option
def inspect(name: str, output: str) -> None:
    """Show one deployment: NAME is 'flow/deployment' or an id."""
    from headwater.deployments.backend import get_backend

    item = get_backend().read(name)
    data = _summary(item)
    if output == "json":
        print_json_lines([data])
        return
    out = console()
    out.print(f"[bold]{item.full_name}[/bold]  {item.id}")
    for field in ("entrypoint", "path", "description", "version", "paused", "tags", "catchup"):
        value = data.get(field)
        if value not in (None, [], ""):
            out.print(f"  {field}: {value}", markup=False, highlight=False)
    if item.parameters:
        out.print(f"  parameters: {json.dumps(item.parameters)}", markup=False, highlight=False)
    if item.concurrency_limit:
        limit = item.concurrency_limit
        out.print(f"  concurrency limit: {limit.limit} ({limit.collision_strategy.value})")
    for schedule in item.schedules:
        out.print(f"  schedule: {_schedule_text(schedule)}", markup=False, highlight=False)


def _parse_parameter(text: str) -> tuple[str, Any]:
    key, equals, raw = text.partition("=")
    if not equals or not key:
        raise CliError(f"--param {text!r}: expected key=value (the value is read as JSON)")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def _start_time(start_in: str | None, start_at: str | None) -> datetime.datetime | None:
    from headwater.deployments.schedules import parse_duration
    from headwater.exceptions import ScheduleValidationError

    if start_in and start_at:
        raise CliError("--start-in and --start-at cannot be used together")
    now = datetime.datetime.now(datetime.timezone.utc)
    if start_in:
        text = start_in.strip().removeprefix("in ").strip()
        try:
            return now + parse_duration(text, "--start-in")
        except ScheduleValidationError as exc:
            raise CliError(str(exc)) from None
    if start_at:
        try:
            moment = datetime.datetime.fromisoformat(start_at.strip().replace("Z", "+00:00"))
        except ValueError:
            raise CliError(
                f"--start-at {start_at!r}: expected an ISO time like 2026-01-01T17:30"
                " (local unless it has an offset)"
            ) from None
        return moment if moment.tzinfo else moment.astimezone()
    return None


@deployment.command("run")
@click.argument("name")
@click.option("--param", "-p", "params", multiple=True, help="key=value (JSON value); repeatable.")
@click.option("--params", "params_json", help="All parameters as a JSON object ('-': stdin).")
@click.option("--start-in", help="Start after this long: 10m, 1h 30m, '5 minutes'.")
@click.option("--start-at", help="Start at this time (ISO, local unless it has an offset).")
@click.option("--tag", "tags", multiple=True, help="A tag for the run (repeatable).")
@click.option("--flow-run-name", help="The run's name; {parameter} fields are filled in.")
@click.option("--idempotency-key", help="A second request with this key makes no new run.")
@click.option("--watch", is_flag=True, help="Follow the run to its final state.")
@click.option("--watch-timeout", type=float, help="Stop watching after this many seconds.")
@output_option
def run(
    name: str,
    params: tuple[str, ...],
    params_json: str | None,
    start_in: str | None,
    start_at: str | None,
    tags: tuple[str, ...],
    flow_run_name: str | None,
    idempotency_key: str | None,
    watch: bool,
    watch_timeout: float | None,
    output: str,
) -> None:
    """Create a run of deployment NAME ('flow/deployment' or an id)."""
    from headwater.deployments.backend import CreateRun, get_backend
    from headwater.deployments.run_deployment import wait_for_run

    parameters: dict[str, Any] = {}
    if params_json:
        raw = sys.stdin.read() if params_json == "-" else params_json
        try:
            loaded = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise CliError(f"--params: not valid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise CliError("--params: expected a JSON object of parameter names to values")
        parameters.update(loaded)
    given = dict(_parse_parameter(text) for text in params)
    overlap = sorted(set(given) & set(parameters))
    if overlap:
        click.echo(f"--param overrides --params for: {', '.join(overlap)}", err=True)
    parameters.update(given)
    backend = get_backend()
    target = backend.read(name)
    known = target.parameter_schema.get("properties")
    if known is not None and not target.parameter_schema.get("additionalProperties", True):
        unknown = sorted(set(parameters) - set(known))
        if unknown:
            raise CliError(
                f"{target.full_name} has no parameter(s) {', '.join(unknown)};"
                f" it takes: {', '.join(sorted(known)) or 'none'}"
            )
    when = _start_time(start_in, start_at)
    flow_run, created = backend.create_run(
        target,
        CreateRun(
            parameters=parameters,
            scheduled_time=when,
            flow_run_name=flow_run_name,
            tags=sorted(set(tags)),
            idempotency_key=idempotency_key,
        ),
    )
    _show_run(flow_run, created, output)
    if watch:
        final = wait_for_run(flow_run.id, watch_timeout)
        if output != "json":
            click.echo(
                f"Flow run {final.name!r} ended {final.state_name}"
                if final.is_final
                else f"Flow run {final.name!r} is {final.state_name} (stopped watching)"
            )
        else:
            print_json_lines([_run_data(final)])
        sys.exit(0 if final.state_type.value == "COMPLETED" else 1)


def _run_data(flow_run: RunRow) -> dict[str, Any]:
    import msgspec

    return msgspec.to_builtins(flow_run)


def _show_run(flow_run: RunRow, created: bool, output: str) -> None:
    if output == "json":
        print_json_lines([{**_run_data(flow_run), "created": created}])
        return
    verb = "Created" if created else "Found (same idempotency key)"
    click.echo(f"{verb} flow run {flow_run.name!r} ({flow_run.id})")
    click.echo(f"  parameters: {json.dumps(flow_run.parameters)}")
    click.echo(f"  scheduled start: {local_time(flow_run.expected_start_time)}")


@deployment.command("pause")
@click.argument("name")
def pause(name: str) -> None:
    """Pause deployment NAME: no more scheduled runs (its waiting ones are deleted)."""
    from headwater.deployments.backend import get_backend

    item = get_backend().set_paused(name, True)
    click.echo(f"Paused {item.full_name}.")


@deployment.command("resume")
@click.argument("name")
def resume(name: str) -> None:
    """Resume deployment NAME: its schedules make runs again."""
    from headwater.deployments.backend import get_backend

    item = get_backend().set_paused(name, False)
    click.echo(f"Resumed {item.full_name}.")


@deployment.command("delete")
@click.argument("name")
def delete(name: str) -> None:
    """Delete deployment NAME and its waiting runs (its history stays)."""
    from headwater.deployments.backend import get_backend

    item = get_backend().delete(name)
    click.echo(f"Deleted {item.full_name}.")


@click.group("flow")
def flow() -> None:
    """Flows known to this database."""


@flow.command("ls")
@output_option
def flow_ls(output: str) -> None:
    """List flows, by name, with how many deployments each has."""
    import msgspec

    from headwater.deployments.backend import get_backend

    items = get_backend().flows()
    if output == "json":
        print_json_lines(msgspec.to_builtins(item) for item in items)
        return
    if not items:
        click.echo("No flows.")
        return
    table = new_table("Name", "Deployments", "Created", "Id")
    for item in items:
        created = datetime.datetime.fromisoformat(item.created)
        table.add_row(item.name, str(item.deployments), local_time(created), item.id)
    console().print(table)


@flow.command("serve")
@click.argument("entrypoint")
@click.option("--name", "-n", help="The deployment's name (default: the flow's).")
@click.option("--cron", multiple=True, help="A cron schedule (repeatable).")
@click.option("--interval", multiple=True, help="An interval: seconds, 10m, 1h (repeatable).")
@click.option("--rrule", multiple=True, help="An RFC 5545 recurrence rule (repeatable).")
@click.option("--timezone", help="The IANA timezone of the schedules.")
@click.option("--tag", "-t", "tags", multiple=True, help="A tag for its runs (repeatable).")
@click.option("--description", "-d", help="The deployment's description.")
@click.option("--version", "-v", "version", help="The deployment's version.")
@click.option("--limit", type=click.IntRange(min=1), help="Runs this process runs at once.")
@click.option("--global-limit", type=click.IntRange(min=1), help="Runs at once, everywhere.")
@click.option("--pause-on-shutdown/--no-pause-on-shutdown", default=True, show_default=True)
def flow_serve(
    entrypoint: str,
    name: str | None,
    cron: tuple[str, ...],
    interval: tuple[str, ...],
    rrule: tuple[str, ...],
    timezone: str | None,
    tags: tuple[str, ...],
    description: str | None,
    version: str | None,
    limit: int | None,
    global_limit: int | None,
    pause_on_shutdown: bool,
) -> None:
    """Serve the flow at ENTRYPOINT (path/to/file.py:function) until Ctrl-C."""
    import os

    import headwater
    from headwater.deployments.schedules import parse_duration
    from headwater.runner.entrypoint import load_flow

    loaded = load_flow(entrypoint, os.getcwd())
    deployment_of = loaded.to_deployment(
        name,
        cron=list(cron) or None,
        interval=[parse_duration(text, "--interval") for text in interval] or None,
        rrule=list(rrule) or None,
        timezone=timezone,
        tags=list(tags),
        description=description,
        version=version,
        global_limit=global_limit,
        entrypoint=entrypoint,
    )
    deployment_of.definition.path = os.getcwd()
    headwater.serve(deployment_of, limit=limit, pause_on_shutdown=pause_on_shutdown)
