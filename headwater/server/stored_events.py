"""Stored events as the server hands them out: with the ``received`` time of their row.

:func:`~headwater.storage.read_events` returns plain events; the server's answers (the
``/events/filter`` pages, the ``/events/out`` backfill) also say when each was received,
which the storage layer keeps in its own column. One indexed lookup per page adds it.
"""

from __future__ import annotations

import datetime
import uuid

from headwater.events.filters import EventFilter
from headwater.server.wire import ReceivedEvent
from headwater.storage.database import Database
from headwater.storage.event_queries import read_events
from headwater.storage.rows import parse_timestamp

__all__ = ["read_page", "read_received"]


async def read_received(
    database: Database, ids: list[uuid.UUID]
) -> dict[uuid.UUID, datetime.datetime]:
    """The stored ``received`` time of each of ``ids`` that has a row."""
    if not ids:
        return {}
    found: dict[uuid.UUID, datetime.datetime] = {}
    async with database.read() as reader:
        for start in range(0, len(ids), 500):
            chunk = [str(event_id) for event_id in ids[start : start + 500]]
            marks = ", ".join("?" * len(chunk))
            async with reader.execute(
                f"SELECT id, received FROM events WHERE id IN ({marks})", chunk
            ) as cursor:
                for event_id, received in await cursor.fetchall():
                    found[uuid.UUID(event_id)] = parse_timestamp(received)
    return found


async def read_page(
    database: Database,
    event_filter: EventFilter,
    *,
    limit: int,
    page_token: str | None = None,
) -> tuple[list[ReceivedEvent], str | None]:
    """One page of stored events with their received times, and the next page's token.

    Raises:
        InvalidPageTokenError: ``page_token`` is not one this query issued.
        StorageError: the database cannot be read.
    """
    page = await read_events(database, event_filter, limit=limit, page_token=page_token)
    received = await read_received(database, [event.id for event in page.events])
    events = [ReceivedEvent(event, received.get(event.id)) for event in page.events]
    return events, page.next_page_token
