"""A live stream of the server's events (``/api/events/out``) that survives reconnections.

Prefect's ``PrefectEventSubscriber`` in headwater's terms (``prefect-3-semantics.md`` §3.6):
after the handshake the subscriber sends ``{"type": "filter", "filter": ..., "backfill":
true}``; the server backfills matching stored events (at most 15 minutes back) and then
streams live ones, each as ``{"type": "event", "event": {...}}``.

When the connection drops (a server restart, a network blip), the subscriber reconnects with
backoff and subscribes again with ``occurred.since`` set to :data:`RESUME_MARGIN` before the
last event it delivered, so the backfill covers what happened while it was away; events
already delivered are recognised by id and skipped. A server's ``{"type": "gap"}`` notice
(this observer fell behind and the server dropped events for it) is delivered as a
:class:`~headwater.events.bus.GapNotice`, never hidden.

Closes that will not get better by retrying end the stream with an
:class:`~headwater.exceptions.ApiError`: 1008 (credentials rejected) and 1002 (the server
refused the filter).
"""

from __future__ import annotations

import datetime
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

import anyio
import msgspec

from headwater.client.websocket import (
    AUTH_FAILURE_CODE,
    close_quietly,
    open_websocket,
    reconnect_delay,
    websocket_url,
)
from headwater.events.bus import GapNotice
from headwater.events.filters import EventFilter, EventOccurredFilter, EventOrder
from headwater.events.schema import Event, events_decoder_hook
from headwater.exceptions import ApiAuthError, ApiError, ApiUnavailableError

if TYPE_CHECKING:
    from types import TracebackType

    from websockets.asyncio.client import ClientConnection

    from headwater.settings import Settings

__all__ = ["EventSubscriber", "RESUME_MARGIN", "DEFAULT_BACKFILL", "resume_filter"]

DEFAULT_BACKFILL = datetime.timedelta(minutes=1)
"""How far back the first subscription looks when the filter sets no ``occurred.since``."""
RESUME_MARGIN = datetime.timedelta(minutes=1)
"""How far before the last delivered event a re-subscription starts (clocks differ)."""
SEEN_IDS = 100_000
"""Ids remembered for de-duplication (the most recent ones)."""
PROTOCOL_ERROR_CODE = 1002


class _Message(msgspec.Struct):
    type: str
    event: Event | None = None
    dropped: int = 0


_decode = msgspec.json.Decoder(_Message, dec_hook=events_decoder_hook).decode


def resume_filter(
    event_filter: EventFilter, last_seen: datetime.datetime | None, now: datetime.datetime
) -> EventFilter:
    """The filter to subscribe with: from ``last_seen`` minus a margin, else the default
    backfill window (unless the filter sets its own ``since``), oldest first."""
    since = event_filter.occurred.since
    if last_seen is not None:
        since = last_seen - RESUME_MARGIN
    elif since is None:
        since = now - DEFAULT_BACKFILL
    occurred = EventOccurredFilter(since=since, until=event_filter.occurred.until)
    return msgspec.structs.replace(event_filter, occurred=occurred, order=EventOrder.ASC)


class EventSubscriber:
    """An async iterator of :class:`Event` (and :class:`GapNotice`) from the server.

    Use ``async with EventSubscriber(settings, event_filter) as events: async for e in
    events: ...``. The first connection is tried once (an unreachable server raises at
    once); after a drop, up to ``reconnection_attempts`` consecutive attempts are made.

    Args:
        settings: the server (``api_url``) and credentials.
        event_filter: which events; all of them by default.
        backfill: start with matching stored events (see :func:`resume_filter`).
        reconnection_attempts: consecutive failed attempts before giving up.
        on_status: called with a short line when the connection drops or comes back.
    """

    def __init__(
        self,
        settings: Settings,
        event_filter: EventFilter | None = None,
        *,
        backfill: bool = True,
        reconnection_attempts: int = 10,
        on_status: Callable[[str], Any] | None = None,
    ) -> None:
        if not settings.api_url:
            raise ApiUnavailableError("(unset)", "HEADWATER_API_URL is not set")
        self.url = websocket_url(settings.api_url, "/events/out")
        self._settings = settings
        self._filter = event_filter or EventFilter()
        self._backfill = backfill
        self._attempts = reconnection_attempts
        self._on_status = on_status
        self._connection: ClientConnection | None = None
        self._seen: OrderedDict[UUID, None] = OrderedDict()
        self._last_seen: datetime.datetime | None = None
        self.reconnections = 0

    async def __aenter__(self) -> EventSubscriber:
        self._connection = await self._subscribe()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection (code 1000)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await close_quietly(connection)

    def __aiter__(self) -> EventSubscriber:
        return self

    async def __anext__(self) -> Event | GapNotice:
        from websockets.exceptions import ConnectionClosed

        while True:
            connection = self._connection
            if connection is None:
                connection = self._connection = await self._reconnect()
            try:
                data = await connection.recv(decode=False)
            except ConnectionClosed as exc:
                self._connection = None
                self._check_close(exc)
                self._status(f"lost the connection ({_close_text(exc)}); reconnecting")
                continue
            item = self._accept(data)
            if item is not None:
                return item

    def _accept(self, data: bytes) -> Event | GapNotice | None:
        try:
            message = _decode(data)
        except (msgspec.DecodeError, ValueError):
            return None  # a frame this version does not understand: skip, as Prefect does
        if message.type == "gap":
            return GapNotice(message.dropped)
        event = message.event
        if message.type != "event" or event is None:
            return None
        seen = self._seen
        if event.id in seen:
            return None
        seen[event.id] = None
        if len(seen) > SEEN_IDS:
            seen.popitem(last=False)
        self._last_seen = event.occurred
        return event

    async def _subscribe(self) -> ClientConnection:
        connection = await open_websocket(self.url, self._settings)
        query = resume_filter(
            self._filter, self._last_seen, datetime.datetime.now(datetime.timezone.utc)
        )
        message = {"type": "filter", "filter": query, "backfill": self._backfill}
        try:
            await connection.send(msgspec.json.encode(message), text=True)
        except Exception as exc:  # ConnectionClosed: the server went away at once
            await close_quietly(connection)
            cause = f"subscription failed ({_close_text(exc)})"
            raise ApiUnavailableError(self.url, cause) from None
        return connection

    async def _reconnect(self) -> ClientConnection:
        longest = self._settings.api_reconnect_max_delay
        failure: ApiUnavailableError | None = None
        for attempt in range(self._attempts):
            await anyio.sleep(reconnect_delay(attempt, longest))
            try:
                connection = await self._subscribe()
            except ApiUnavailableError as exc:
                failure = exc
                continue
            self.reconnections += 1
            self._status(f"reconnected to {self.url}")
            return connection
        raise failure or ApiUnavailableError(self.url, "the connection was lost")

    def _check_close(self, exc: BaseException) -> None:
        received = getattr(exc, "rcvd", None)
        code = None if received is None else received.code
        if code == AUTH_FAILURE_CODE:
            raise ApiAuthError(self.url, f"credentials rejected ({_close_text(exc)})") from None
        if code == PROTOCOL_ERROR_CODE:
            raise ApiError(self.url, f"the server refused the subscription ({_close_text(exc)})")

    def _status(self, text: str) -> None:
        if self._on_status is not None:
            self._on_status(text)

    def __repr__(self) -> str:
        state = "connected" if self._connection is not None else "disconnected"
        return f"<EventSubscriber {self.url!r} {state}>"


def _close_text(exc: BaseException) -> str:
    received = getattr(exc, "rcvd", None)
    if received is None:
        return "connection lost"
    return f"closed with code {received.code}" + (f": {received.reason}" if received.reason else "")
