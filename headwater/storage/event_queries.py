"""Reading stored events with an :class:`~headwater.events.filters.EventFilter`, page by page.

The filter is translated into SQL only where an index can narrow the candidates (time,
event names, resource ids, related resource ids, event ids); every candidate is then
checked with :meth:`EventFilter.matches`, the same pure function live feeds use, so
stored and live results agree by construction. Clauses with no index (labels, roles
alone) are decided by ``matches`` alone: correct, but they scan the time window.

Pages are keyset-paginated on ``(occurred, id)``: a page token carries the position of the
last event returned, never an offset, so paging through a table that is being written
to neither repeats nor skips an event that was already there.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Any

import aiosqlite
import msgspec

from headwater.events.filters import (
    EventAnyResourceFilter,
    EventFilter,
    EventOrder,
    EventRelatedFilter,
)
from headwater.events.schema import Event, decode_event
from headwater.exceptions import InvalidEventError, InvalidPageTokenError
from headwater.storage.database import Database
from headwater.storage.rows import format_timestamp

__all__ = ["EventPage", "read_events"]

_SCAN_CHUNK = 500


class EventPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of events and the token of the next page (None on the last page)."""

    events: list[Event]
    next_page_token: str | None


class _Position(msgspec.Struct, frozen=True, array_like=True):
    occurred: str
    id: str
    order: str


def _prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix``."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            return prefix[:-1] + chr(last + 1)
        prefix = prefix[:-1]
    return None


class _Sql:
    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.params: list[Any] = []

    def add(self, clause: str, *params: Any) -> None:
        self.clauses.append(clause)
        self.params.extend(params)

    def prefixes(self, column: str, prefixes: list[str]) -> str:
        """An OR of index-friendly range conditions, its parameters added."""
        parts = []
        for prefix in prefixes:
            end = _prefix_end(prefix)
            if end is None:
                parts.append("1")
            else:
                parts.append(f"({column} >= ? AND {column} < ?)")
                self.params.extend((prefix, end))
        return "(" + " OR ".join(parts or ["0"]) + ")"


def _marks(values: list[Any]) -> str:
    return ", ".join("?" * len(values))


def _related_subquery(sql: _Sql, clause: EventRelatedFilter, window: str) -> None:
    ids = clause.id
    if ids is None and clause.resources_in_roles is not None:
        ids = [resource_id for resource_id, _ in clause.resources_in_roles]
    if ids is None:
        return  # roles and labels alone: no index to use, matches() decides
    sql.clauses.append(
        f"events.id IN (SELECT event_id FROM event_resources WHERE resource_id IN ({_marks(ids)})"
        f"{window})"
    )
    sql.params.extend(ids)


def _any_resource(sql: _Sql, clause: EventAnyResourceFilter, window: str) -> None:
    if clause.id is not None:
        marks = _marks(clause.id)
        sql.clauses.append(
            f"(resource_id IN ({marks}) OR events.id IN (SELECT event_id FROM event_resources"
            f" WHERE resource_id IN ({marks}){window}))"
        )
        sql.params.extend(clause.id)
        sql.params.extend(clause.id)
    elif clause.id_prefix is not None:
        primary = sql.prefixes("resource_id", clause.id_prefix)
        related = sql.prefixes("resource_id", clause.id_prefix)
        sql.clauses.append(
            f"({primary} OR events.id IN (SELECT event_id FROM event_resources WHERE {related}"
            f"{window}))"
        )


def _where(event_filter: EventFilter) -> tuple[list[str], list[Any]]:
    """The SQL conditions that narrow candidates for ``event_filter`` (never stricter than it)."""
    sql = _Sql()
    window = ""
    window_params: list[Any] = []
    occurred = event_filter.occurred
    if occurred.since is not None:
        since = format_timestamp(occurred.since)
        sql.add("occurred >= ?", since)
        window += " AND occurred >= ?"
        window_params.append(since)
    if occurred.until is not None:
        until = format_timestamp(occurred.until)
        sql.add("occurred <= ?", until)
        window += " AND occurred <= ?"
        window_params.append(until)
    names = event_filter.event
    if names is not None:
        if names.name is not None:
            sql.add(f"event IN ({_marks(names.name)})", *names.name)
        if names.prefix is not None:
            sql.clauses.append(sql.prefixes("event", names.prefix))
        if names.exclude_name:
            sql.add(f"event NOT IN ({_marks(names.exclude_name)})", *names.exclude_name)
    resource = event_filter.resource
    if resource is not None:
        if resource.id is not None:
            sql.add(f"resource_id IN ({_marks(resource.id)})", *resource.id)
        if resource.id_prefix is not None:
            sql.clauses.append(sql.prefixes("resource_id", resource.id_prefix))
    if event_filter.id is not None and event_filter.id.id is not None:
        ids = [str(event_id) for event_id in event_filter.id.id]
        sql.add(f"events.id IN ({_marks(ids)})", *ids)
    # Subqueries repeat the time window so that they read only the relevant index range;
    # their parameters go in the order their clauses are added.
    for clause in event_filter.related_clauses():
        before = len(sql.params)
        _related_subquery(sql, clause, window)
        if len(sql.params) > before and window:
            sql.params.extend(window_params)
    for any_clause in event_filter.any_resource_clauses():
        before = len(sql.params)
        _any_resource(sql, any_clause, window)
        if len(sql.params) > before and window:
            sql.params.extend(window_params)
    return sql.clauses, sql.params


def _encode_token(occurred: str, event_id: str, order: EventOrder) -> str:
    raw = msgspec.json.encode(_Position(occurred, event_id, order.value))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, order: EventOrder, path: str) -> _Position:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        position = msgspec.json.decode(raw, type=_Position)
        uuid.UUID(position.id)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise InvalidPageTokenError(path, f"malformed page token {token[:40]!r}") from None
    if position.order != order.value:
        raise InvalidPageTokenError(
            path, f"the page token is for {position.order} order, the filter asks {order.value}"
        )
    return position


async def read_events(
    database: Database,
    event_filter: EventFilter | None = None,
    *,
    limit: int = 50,
    page_token: str | None = None,
) -> EventPage:
    """One page of stored events matching ``event_filter``, in its order (DESC by default).

    Args:
        database: the database to read.
        event_filter: which events; all of them when None.
        limit: at most this many events on the page.
        page_token: ``next_page_token`` of the previous page, with the same filter.

    Raises:
        InvalidPageTokenError: the token is malformed or was made for the other order.
        StorageError: the database cannot be read.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    event_filter = event_filter or EventFilter()
    order = event_filter.order
    clauses, params = _where(event_filter)
    ascending = order is EventOrder.ASC
    direction = "ASC" if ascending else "DESC"
    comparison = ">" if ascending else "<"
    position: tuple[str, str] | None = None
    if page_token is not None:
        decoded = _decode_token(page_token, order, str(database.path))
        position = (decoded.occurred, decoded.id)
    found: list[tuple[str, str, Event]] = []
    chunk = max(limit + 1, _SCAN_CHUNK)
    async with database.read() as reader:
        while len(found) <= limit:
            conditions = list(clauses)
            arguments = list(params)
            if position is not None:
                conditions.append(f"(occurred, events.id) {comparison} (?, ?)")
                arguments.extend(position)
            where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
            sql = (
                f"SELECT occurred, id, data FROM events{where}"
                f" ORDER BY occurred {direction}, id {direction} LIMIT ?"
            )
            rows = await _fetch(reader, sql, [*arguments, chunk])
            for occurred, event_id, data in rows:
                event = _decode(data)
                if event is not None and event_filter.matches(event):
                    found.append((occurred, event_id, event))
                    if len(found) > limit:
                        break
            if len(rows) < chunk:
                break
            position = (rows[-1][0], rows[-1][1])
    token = None
    if len(found) > limit:
        found = found[:limit]
        last_occurred, last_id, _ = found[-1]
        token = _encode_token(last_occurred, last_id, order)
    return EventPage(events=[event for _, _, event in found], next_page_token=token)


async def _fetch(reader: aiosqlite.Connection, sql: str, params: list[Any]) -> list[Any]:
    async with reader.execute(sql, params) as cursor:
        return list(await cursor.fetchall())


def _decode(data: str) -> Event | None:
    try:
        return decode_event(data)
    except InvalidEventError:
        return None  # a row this version cannot read is skipped, not fatal to the page
