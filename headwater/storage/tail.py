"""Following the events table as other processes write it: ``headwater events stream`` locally.

Without a server, every process on the machine writes its events to the same SQLite file,
so watching that file shows runs from any of them. :func:`tail_events` first sends the
matching events stored since a given time (oldest first), then polls for rows committed
since its last look.

New rows are found by ``rowid``, not by ``occurred``: a row gets its rowid under SQLite's
write lock, so rowid order is commit order across processes, whereas ``occurred`` is the
emitter's clock: a process committing a batch 100 ms late, or an event emitted with an
earlier ``occurred``, would slip behind a time cursor and be missed. Events both backfilled
and newly committed meanwhile are sent once (by id).
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import AsyncGenerator
from typing import Any

import anyio
import msgspec

from headwater.events.filters import EventFilter, EventOccurredFilter, EventOrder
from headwater.events.schema import Event, decode_event
from headwater.exceptions import InvalidEventError
from headwater.storage.database import Database
from headwater.storage.event_queries import read_events

__all__ = ["POLL_INTERVAL", "tail_events"]

POLL_INTERVAL = 0.2
"""Seconds between two looks for new rows when the last look found none."""
_CHUNK = 500


async def _max_rowid(database: Database) -> int:
    async with (
        database.read() as reader,
        reader.execute("SELECT coalesce(max(rowid), 0) FROM events") as cursor,
    ):
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def _rows_after(database: Database, rowid: int) -> list[Any]:
    async with (
        database.read() as reader,
        reader.execute(
            "SELECT rowid, data FROM events WHERE rowid > ? ORDER BY rowid LIMIT ?", (rowid, _CHUNK)
        ) as cursor,
    ):
        return list(await cursor.fetchall())


async def tail_events(
    database: Database,
    event_filter: EventFilter | None = None,
    *,
    since: datetime.datetime | None = None,
    poll_interval: float = POLL_INTERVAL,
) -> AsyncGenerator[Event, None]:
    """Stored events matching ``event_filter``: those since ``since``, then every new one.

    Args:
        database: the database to follow (any process may be writing it).
        event_filter: which events; all by default. New events must match it as given.
        since: also send the matching events that occurred at or after this time and are
            already stored, oldest first; None sends only new ones.
        poll_interval: seconds between looks when nothing new was found.

    Yields:
        Events, each once, in commit order after the backfill. Runs until cancelled.

    Raises:
        StorageError: the database cannot be read.
    """
    event_filter = event_filter or EventFilter()
    position = await _max_rowid(database)
    sent: set[uuid.UUID] = set()
    if since is not None:
        bound = event_filter.occurred.since
        occurred = EventOccurredFilter(
            since=since if bound is None or since > bound else bound,
            until=event_filter.occurred.until,
        )
        backfill = msgspec.structs.replace(event_filter, occurred=occurred, order=EventOrder.ASC)
        token: str | None = None
        while True:
            page = await read_events(database, backfill, limit=_CHUNK, page_token=token)
            for event in page.events:
                sent.add(event.id)
                yield event
            token = page.next_page_token
            if token is None:
                break
    # Rows committed during the backfill may repeat it; none after this rowid can.
    overlap_end = await _max_rowid(database) if sent else position
    matches = event_filter.matches
    while True:
        rows = await _rows_after(database, position)
        if not rows:
            await anyio.sleep(poll_interval)
            continue
        for rowid, data in rows:
            position = rowid
            try:
                event = decode_event(data)
            except InvalidEventError:
                continue  # a row this version cannot read
            if sent:
                if event.id in sent:
                    continue
                if rowid >= overlap_end:
                    sent = set()
            if matches(event):
                yield event
