"""``headwater concurrency-limit``: create, list, inspect, reset and delete concurrency limits.

NAME is always the limit's full name. A tag limit, which limits the task runs carrying a tag,
is named ``tag:<tag>``: give that name, or the bare tag with ``--tag``; so
``create tag:etl 2`` and ``create --tag etl 2`` do the same. (Prefect's ``prefect
concurrency-limit create etl 2`` means the tag; here a bare name is a global limit, used by
``concurrency("etl")``, so that one command covers both kinds.)

The commands work on the local database directly, like every process that takes slots.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from headwater.cli.errors import CliUsageError
from headwater.cli.output import console, local_time, new_table, output_option, print_json_lines

if TYPE_CHECKING:
    from headwater.concurrency import ConcurrencyLimit

__all__ = ["concurrency_limit"]

_TAG_HELP = "NAME is a task tag: act on the limit named tag:NAME."


def _name(name: str, tag: bool) -> str:
    if not name.strip():
        raise CliUsageError("the limit name must not be empty")
    return f"tag:{name}" if tag and not name.startswith("tag:") else name


def _slots(limit: ConcurrencyLimit) -> str:
    used = limit.active_slots + limit.decaying_slots
    return f"{used:g}/{limit.limit}"


@click.group("concurrency-limit")
def concurrency_limit() -> None:
    """Manage concurrency limits (global limits, and tag limits named tag:<tag>).

    Code takes slots with headwater.concurrency.sync/asyncio concurrency() and rate_limit();
    a task run takes one slot on tag:<tag> for each of its tags that has a limit.
    """


@concurrency_limit.command("create")
@click.argument("name")
@click.argument("limit", type=click.IntRange(min=0))
@click.option(
    "--slot-decay-per-second",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="How fast slots taken by rate_limit() drain; required for rate limits.",
)
@click.option("--tag", is_flag=True, help=_TAG_HELP)
@click.option("--inactive", is_flag=True, help="Create it inactive: it never blocks.")
@output_option
def create(
    name: str, limit: int, slot_decay_per_second: float, tag: bool, inactive: bool, output: str
) -> None:
    """Create limit NAME of LIMIT slots (tag:<tag>, or --tag TAG, for a tag limit)."""
    from headwater.concurrency import create_concurrency_limit
    from headwater.exceptions import ConcurrencyLimitExistsError

    full = _name(name, tag)
    try:
        created = create_concurrency_limit(
            full, limit, active=not inactive, slot_decay_per_second=slot_decay_per_second
        )
    except (ConcurrencyLimitExistsError, ValueError) as exc:
        raise CliUsageError(str(exc)) from None
    if output == "json":
        print_json_lines([created])
        return
    kind = f"task runs tagged {created.tag!r}" if created.tag else "concurrency()/rate_limit()"
    click.echo(f"Created concurrency limit {full!r}: {limit} slot(s), for {kind}.")
    if not created.tag and not slot_decay_per_second:
        click.echo(f"(To limit task runs tagged {name!r}, the limit is named 'tag:{name}'.)")


@concurrency_limit.command("ls")
@output_option
def list_command(output: str) -> None:
    """List the limits and the slots in use."""
    from headwater.concurrency import read_concurrency_limits

    found = read_concurrency_limits()
    if output == "json":
        print_json_lines(found)
        return
    table = new_table("Name", "Slots", "Active", "Decay/s", "Created")
    for limit in found:
        table.add_row(
            limit.name,
            _slots(limit),
            "yes" if limit.active else "no",
            f"{limit.slot_decay_per_second:g}" if limit.slot_decay_per_second else "-",
            local_time(limit.created),
        )
    console().print(table)


@concurrency_limit.command("inspect")
@click.argument("name")
@click.option("--tag", is_flag=True, help=_TAG_HELP)
@output_option
def inspect(name: str, tag: bool, output: str) -> None:
    """Show limit NAME and who holds its slots."""
    from headwater.concurrency import read_concurrency_limit
    from headwater.exceptions import ConcurrencyLimitNotFound

    try:
        detail = read_concurrency_limit(_name(name, tag))
    except ConcurrencyLimitNotFound as exc:
        raise CliUsageError(str(exc)) from None
    if output == "json":
        print_json_lines([detail])
        return
    limit = detail.limit
    out = console()
    out.print(f"[bold]{limit.name}[/bold]  ({limit.id})")
    out.print(f"  slots in use   {_slots(limit)}")
    out.print(f"  active         {'yes' if limit.active else 'no'}")
    if limit.slot_decay_per_second:
        out.print(f"  decay          {limit.slot_decay_per_second:g} slot(s)/s")
        out.print(f"  rate-limited   {limit.decaying_slots:.2f} slot(s) not yet drained")
    out.print(f"  created        {local_time(limit.created)}")
    if not detail.leases:
        out.print("  no holders")
        return
    table = new_table("Lease", "Slots", "Holder", "Process", "Since", "Expires")
    for lease in detail.leases:
        holder = f"{lease.holder['type']} {lease.holder['id']}" if lease.holder else "-"
        table.add_row(
            str(lease.id),
            str(lease.slots),
            holder,
            f"{lease.pid}@{lease.hostname}",
            local_time(lease.created),
            local_time(lease.expires),
        )
    out.print(table)


@concurrency_limit.command("reset")
@click.argument("name")
@click.option("--tag", is_flag=True, help=_TAG_HELP)
def reset(name: str, tag: bool) -> None:
    """Free every slot of limit NAME (for slots held by a holder you know is gone)."""
    from headwater.concurrency import reset_concurrency_limit
    from headwater.exceptions import ConcurrencyLimitNotFound

    full = _name(name, tag)
    try:
        reset_concurrency_limit(full)
    except ConcurrencyLimitNotFound as exc:
        raise CliUsageError(str(exc)) from None
    click.echo(f"Reset concurrency limit {full!r}: every slot is free.")


@concurrency_limit.command("delete")
@click.argument("name")
@click.option("--tag", is_flag=True, help=_TAG_HELP)
def delete(name: str, tag: bool) -> None:
    """Delete limit NAME; what it limited runs unlimited from now on."""
    from headwater.concurrency import delete_concurrency_limit
    from headwater.exceptions import ConcurrencyLimitNotFound

    full = _name(name, tag)
    try:
        delete_concurrency_limit(full)
    except ConcurrencyLimitNotFound as exc:
        raise CliUsageError(str(exc)) from None
    click.echo(f"Deleted concurrency limit {full!r}.")
