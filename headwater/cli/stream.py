"""``headwater events stream``: print events as they happen, one line each.

With ``HEADWATER_API_URL`` set, the events come from the server's ``/api/events/out``
websocket (:class:`~headwater.client.subscriber.EventSubscriber`), which reconnects after a
drop and resumes where it left off. Without it, they come from the local database, followed
as other processes write it (:func:`~headwater.storage.tail.tail_events`), so one terminal
shows the runs of every process on the machine.

Either way the stream starts with the matching events of the last minute (``--since`` to
look further back), so an event that happened just before the command started is not missed.
``--output json`` prints each event as one compact JSON object per line (Prefect's keys:
occurred, event, resource, related, payload, id, follows), for piping; ``text`` colours the
event name by the state type of its resource. Status lines go to stderr, never mixed into
the events. ``--run-once`` stops after the first event (Prefect documents the flag; headwater
honours it).

Exit status: 0 after ``--run-once``; 1 when the stream cannot start or is lost for good
(unreachable server, rejected credentials, database unusable); 130 on Ctrl-C.
"""

from __future__ import annotations

import datetime
import sys
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import click

from headwater.cli.errors import CliUsageError
from headwater.cli.params import JSON_OBJECT, TIME

if TYPE_CHECKING:
    from headwater.events.filters import EventFilter
    from headwater.events.schema import Event

__all__ = ["event_line", "stream"]

BACKFILL = datetime.timedelta(minutes=1)
STATE_TYPE = "headwater.state-type"


def _build_filter(
    filter_json: dict[str, Any] | None,
    names: tuple[str, ...],
    prefixes: tuple[str, ...],
    resource_ids: tuple[str, ...],
    resource_id_prefixes: tuple[str, ...],
    related_ids: tuple[str, ...],
) -> EventFilter:
    import msgspec

    from headwater.cli.events import build_event_filter
    from headwater.events.filters import EventFilter

    options = names or prefixes or resource_ids or resource_id_prefixes or related_ids
    if filter_json is not None:
        if options:
            raise CliUsageError("give either --filter or the --event/--resource-id options")
        try:
            return msgspec.convert(filter_json, EventFilter)
        except msgspec.ValidationError as exc:
            raise CliUsageError(f"--filter is not an EventFilter: {exc}") from None
    return build_event_filter(
        names=names,
        prefixes=prefixes,
        resource_ids=resource_ids,
        resource_id_prefixes=resource_id_prefixes,
        related_ids=related_ids,
        order="ASC",
    )


def event_line(event: Event) -> Any:
    """One event as a line of text: local time, name (coloured by state type), resource."""
    from rich.text import Text

    from headwater.cli.output import STATE_STYLES, local_time

    line = Text(local_time(event.occurred, precise=True) + "  ")
    line.append(event.event, style=STATE_STYLES.get(event.resource.get(STATE_TYPE, ""), "bold"))
    line.append("  " + event.resource_id)
    name = event.resource.name
    if name:
        line.append(f" ({name})", style="dim")
    return line


@click.command("stream")
@click.option(
    "--filter",
    "filter_json",
    type=JSON_OBJECT,
    metavar="JSON",
    help='An EventFilter as JSON, e.g. \'{"event": {"prefix": ["headwater.flow-run."]}}\'.',
)
@click.option("--event", "names", multiple=True, metavar="NAME", help="Exact event name.")
@click.option("--event-prefix", "prefixes", multiple=True, metavar="PREFIX", help="Name prefix.")
@click.option("--resource-id", "resource_ids", multiple=True, metavar="ID", help="Resource id.")
@click.option("--resource-id-prefix", "resource_id_prefixes", multiple=True, metavar="PREFIX")
@click.option("--related-id", "related_ids", multiple=True, metavar="ID", help="Related id.")
@click.option(
    "--since", type=TIME, help="Start with stored events since then (default: 1 minute ago)."
)
@click.option(
    "--output",
    "--format",
    "-o",
    "output",
    type=click.Choice(["text", "json"], case_sensitive=False),
    default="text",
    show_default=True,
    help="text for people; json for one JSON object per line.",
)
@click.option("--run-once", is_flag=True, help="Stop after the first event.")
def stream(
    filter_json: dict[str, Any] | None,
    names: tuple[str, ...],
    prefixes: tuple[str, ...],
    resource_ids: tuple[str, ...],
    resource_id_prefixes: tuple[str, ...],
    related_ids: tuple[str, ...],
    since: datetime.datetime | None,
    output: str,
    run_once: bool,
) -> None:
    """Print events as they happen, from the server (HEADWATER_API_URL) or the local database.

    Filter options are AND-ed (repeated values of one option OR-ed); --filter takes a whole
    EventFilter instead. Repeated --event-prefix or --resource-id values are OR-ed.
    """
    import anyio

    event_filter = _build_filter(
        filter_json, names, prefixes, resource_ids, resource_id_prefixes, related_ids
    )
    start = since or datetime.datetime.now(datetime.timezone.utc) - BACKFILL
    printer = _Printer(output.lower())
    click.echo("Subscribing to event stream...", err=True)
    try:
        anyio.run(_follow, event_filter, start, printer, run_once)
    except KeyboardInterrupt:
        click.echo("Exiting...", err=True)
        sys.exit(130)


class _Printer:
    def __init__(self, output: str) -> None:
        import msgspec

        self._json = output == "json"
        self._encode = msgspec.json.Encoder().encode
        if not self._json:
            from headwater.cli.output import console

            self._console = console()

    def event(self, event: Event) -> None:
        if self._json:
            sys.stdout.write(self._encode(event).decode() + "\n")
        else:
            self._console.print(event_line(event))
        sys.stdout.flush()  # a pipe reader sees each event as it happens

    @staticmethod
    def status(text: str) -> None:
        click.echo(text, err=True)


async def _follow(
    event_filter: EventFilter, start: datetime.datetime, printer: _Printer, run_once: bool
) -> None:
    from headwater.events.bus import GapNotice
    from headwater.settings import get_settings

    settings = get_settings()
    if settings.api_url:
        import msgspec

        from headwater.client.subscriber import EventSubscriber
        from headwater.events.filters import EventOccurredFilter

        occurred = EventOccurredFilter(since=start, until=event_filter.occurred.until)
        query = msgspec.structs.replace(event_filter, occurred=occurred)
        async with EventSubscriber(settings, query, on_status=printer.status) as subscriber:
            async for item in subscriber:
                if isinstance(item, GapNotice):
                    printer.status(f"{item.dropped} events were dropped: this stream fell behind")
                    continue
                printer.event(item)
                if run_once:
                    return
        return
    from headwater.storage import open_database
    from headwater.storage.tail import tail_events

    database = await open_database()
    try:
        async with aclosing(tail_events(database, event_filter, since=start)) as events:
            async for event in events:
                printer.event(event)
                if run_once:
                    return
    finally:
        await database.close()
