"""``headwater events``: query stored events with an EventFilter, and emit your own.

``events ls`` options map one-to-one onto :class:`~headwater.events.filters.EventFilter`
clauses (all AND-ed; repeated values of one option OR-ed). ``events emit`` mirrors
``prefect event emit`` and publishes through the bus, so the event is stored by the same
persistence consumer as every other event (and seen by any in-process observer).

With ``HEADWATER_API_URL`` set, both talk to the server instead: ``ls`` reads its stored
events and ``emit`` posts the event (``POST /api/events``), which the server has published
when the command reports success; an unreachable server is an error, nothing is emitted.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

import click

from headwater.cli.errors import CliError, CliUsageError
from headwater.cli.history import with_history
from headwater.cli.output import console, local_time, new_table, output_option, print_json_lines
from headwater.cli.params import JSON_LABELS, JSON_OBJECT, JSON_RELATED, TIME

if TYPE_CHECKING:
    from headwater.cli.history import History
    from headwater.events.filters import EventFilter
    from headwater.events.schema import Event

__all__ = ["build_event_filter", "events"]

_EMIT_TIMEOUT = 30.0


@click.group("events")
def events() -> None:
    """Query stored events, or emit one."""


def build_event_filter(
    *,
    names: tuple[str, ...] = (),
    prefixes: tuple[str, ...] = (),
    resource_ids: tuple[str, ...] = (),
    resource_id_prefixes: tuple[str, ...] = (),
    related_ids: tuple[str, ...] = (),
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
    order: str = "DESC",
) -> EventFilter:
    """The EventFilter the ``events ls`` options describe; unset options add no clause.

    Raises:
        CliUsageError: ``since`` is after ``until`` (a filter that could match nothing).
    """
    from headwater.events.filters import (
        EventFilter,
        EventNameFilter,
        EventOccurredFilter,
        EventOrder,
        EventRelatedFilter,
        EventResourceFilter,
    )

    if since is not None and until is not None and since > until:
        raise CliUsageError(f"--since ({since.isoformat()}) is after --until ({until.isoformat()})")
    name_clause = None
    if names or prefixes:
        name_clause = EventNameFilter(name=list(names) or None, prefix=list(prefixes) or None)
    resource_clause = None
    if resource_ids or resource_id_prefixes:
        resource_clause = EventResourceFilter(
            id=list(resource_ids) or None, id_prefix=list(resource_id_prefixes) or None
        )
    return EventFilter(
        occurred=EventOccurredFilter(since=since, until=until),
        event=name_clause,
        resource=resource_clause,
        related=EventRelatedFilter(id=list(related_ids)) if related_ids else None,
        order=EventOrder(order.upper()),
    )


@events.command("ls")
@click.option(
    "--event", "names", multiple=True, metavar="NAME", help="Events with this exact name."
)
@click.option(
    "--event-prefix",
    "prefixes",
    multiple=True,
    metavar="PREFIX",
    help="Events whose name starts with this (e.g. headwater.flow-run.).",
)
@click.option(
    "--resource-id", "resource_ids", multiple=True, metavar="ID", help="Primary resource id."
)
@click.option(
    "--resource-id-prefix",
    "resource_id_prefixes",
    multiple=True,
    metavar="PREFIX",
    help="Primary resource id starts with this.",
)
@click.option(
    "--related-id",
    "related_ids",
    multiple=True,
    metavar="ID",
    help="Some related resource has this id (e.g. headwater.flow-run.<uuid>).",
)
@click.option("--since", type=TIME, help="Occurred at or after (ISO, or an age: 30m, 1h, 7d).")
@click.option("--until", type=TIME, help="Occurred at or before (ISO, or an age).")
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="At most this many.",
)
@click.option(
    "--order",
    type=click.Choice(["asc", "desc"], case_sensitive=False),
    default="desc",
    show_default=True,
    help="By occurred time.",
)
@output_option
def ls(
    names: tuple[str, ...],
    prefixes: tuple[str, ...],
    resource_ids: tuple[str, ...],
    resource_id_prefixes: tuple[str, ...],
    related_ids: tuple[str, ...],
    since: datetime.datetime | None,
    until: datetime.datetime | None,
    limit: int,
    order: str,
    output: str,
) -> None:
    """List stored events matching every option given, newest first by default."""
    event_filter = build_event_filter(
        names=names,
        prefixes=prefixes,
        resource_ids=resource_ids,
        resource_id_prefixes=resource_id_prefixes,
        related_ids=related_ids,
        since=since,
        until=until,
        order=order,
    )

    async def query(history: History) -> list[Event]:
        return await history.events(event_filter, limit)

    found = with_history(query)
    if output == "json":
        print_json_lines(found)
        return
    table = new_table("Occurred", "Event", "Resource")
    for event in found:
        name = event.resource.name
        resource = event.resource_id if not name else f"{event.resource_id} ({name})"
        table.add_row(local_time(event.occurred, precise=True), event.event, resource)
    console().print(table)


@events.command("emit")
@click.argument("name")
@click.option("--resource-id", metavar="ID", help="The primary resource's id, e.g. my.app.orders.")
@click.option(
    "--resource",
    type=JSON_LABELS,
    help="The primary resource's labels as a JSON object, "
    'e.g. \'{"headwater.resource.id": "x", "team": "data"}\'.',
)
@click.option(
    "--related",
    type=JSON_RELATED,
    help="Related resources: a JSON object of labels or a list of them, each with "
    "headwater.resource.id and headwater.resource.role.",
)
@click.option("--payload", type=JSON_OBJECT, help="The payload, a JSON object.")
@click.option(
    "--occurred", type=TIME, help="When it happened (ISO, or an age like 2h); now by default."
)
def emit(
    name: str,
    resource_id: str | None,
    resource: dict[str, str] | None,
    related: list[dict[str, str]] | dict[str, str] | None,
    payload: dict[str, Any] | None,
    occurred: datetime.datetime | None,
) -> None:
    """Emit event NAME and store it; prints its id.

    Needs a resource id, from --resource-id or a headwater.resource.id label in --resource.
    """
    from headwater.events.bus import get_bus
    from headwater.events.emit import emit_event
    from headwater.events.schema import RESOURCE_ID
    from headwater.settings import get_settings
    from headwater.storage import ensure_persistence

    labels = dict(resource or {})
    if resource_id is not None:
        labels[RESOURCE_ID] = resource_id
    if not labels.get(RESOURCE_ID):
        raise CliUsageError(f"give --resource-id, or --resource with a {RESOURCE_ID!r} label")
    related_list = [related] if isinstance(related, dict) else related
    if get_settings().api_url:
        sent = _emit_to_server(name, labels, list(related_list or ()), payload, occurred)
        click.echo(f"Successfully emitted event '{name}' with ID {sent.id}")
        return
    if not get_settings().events_enabled:
        raise CliError("events are disabled (HEADWATER_EVENTS_ENABLED=false); nothing was emitted")
    persistence = ensure_persistence()  # StorageError: the group reports it (exit 1)
    if persistence is None:
        raise CliError(
            "the event would not be stored: the database cannot be used and "
            "HEADWATER_PERSISTENCE_REQUIRED is false; nothing was emitted"
        )
    event = emit_event(
        name,
        resource=labels,
        related=list(related_list or ()),
        payload=payload,
        occurred=occurred,
    )
    if event is None:
        raise CliError("events are disabled; nothing was emitted")
    if not get_bus().flush(timeout=_EMIT_TIMEOUT):
        raise CliError(f"the event was not written to {persistence.database.path} in time")
    if persistence.writer.error is not None:
        raise persistence.writer.error
    click.echo(f"Successfully emitted event '{name}' with ID {event.id}")


def _emit_to_server(
    name: str,
    labels: dict[str, str],
    related: list[dict[str, str]],
    payload: dict[str, Any] | None,
    occurred: datetime.datetime | None,
) -> Event:
    """Validate the event as ``emit_event`` would and post it to the server."""
    import anyio
    import msgspec

    from headwater.client.http import HeadwaterClient
    from headwater.events.schema import Event, RelatedResource, Resource, validate_event_shape
    from headwater.exceptions import EventTooLarge, InvalidEventError
    from headwater.settings import get_settings

    settings = get_settings()
    fields: dict[str, Any] = {
        "event": name,
        "resource": Resource(labels),
        "related": [RelatedResource(item) for item in related],
        "payload": dict(payload or {}),
    }
    if occurred is not None:
        fields["occurred"] = occurred
    event = Event(**fields)
    validate_event_shape(event)
    try:
        size = len(msgspec.json.encode(event))
    except (TypeError, msgspec.EncodeError) as exc:
        raise InvalidEventError(
            f"payload of event {name!r} is not JSON-serialisable: {exc}"
        ) from None
    if size > settings.events_maximum_size_bytes:
        raise EventTooLarge(size, settings.events_maximum_size_bytes)

    async def post() -> None:
        async with HeadwaterClient(settings) as client:
            await client.emit_events([event])

    anyio.run(post)
    return event
