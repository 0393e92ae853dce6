"""``/api/events/out``: live events for observers, with a backfill of recent stored ones.

After the handshake (:mod:`headwater.server.handshake`) the client sends
``{"type": "filter", "filter": <EventFilter>, "backfill": true|false}`` (anything else closes
with 1002). Then, as in Prefect:

1. the server subscribes to the live bus *first*, so nothing published from now on is missed;
2. with ``backfill``, it waits until persistence has committed what was published before
   (``bus.aflush``, at most 10 s; Prefect skips this and can miss events in flight), then
   sends the matching stored events, oldest first, in pages of 250, looking back at most
   15 minutes (``occurred.since`` is clamped);
3. it streams live events matching the filter, skipping those the backfill already sent.
   Duplicates can only be among the events buffered when the backfill ended, so the set of
   backfilled ids is dropped once those are through.

Each event is ``{"type": "event", "event": {...}}`` with the event's ``received`` time.
The live stream applies the client's filter as given (the clamp is for the backfill only).

Slow observers (headwater's addition to the protocol): observers share one bus subscriber,
the fan-out (:mod:`headwater.server.fanout`), which indexes them by the event names or
resource ids their filters name, so an observer whose filter matches nothing costs the
publishers nothing. Each observer has its own bounded, lossy queue. When it is full, new
events are dropped for that observer only and it receives ``{"type": "gap", "dropped": n}``
where they went missing; ``n`` counts every event routed to it that it had no room for.
Neither the bus nor the other observers ever wait for it. Prefect drops such events
silently. An observer that stops reading (a send blocked for the server's
``observer_send_timeout``, 30 s by default) is disconnected with 1008, freeing its slot.

A disconnected client is noticed at once (a reader task waits on the socket the whole time),
and its queue is removed from the fan-out whatever way the connection ends.
"""

from __future__ import annotations

import datetime
import logging
import uuid

import anyio
import msgspec
from starlette.websockets import WebSocket, WebSocketDisconnect

from headwater.events.bus import GapNotice
from headwater.events.filters import (
    EventFilter,
    EventOccurredFilter,
    EventOrder,
    check_filter_cost,
)
from headwater.server.fanout import ObserverQueue
from headwater.server.handshake import WS_1002_PROTOCOL_ERROR, accept, close_quietly, receive_first
from headwater.server.state import ServerState, get_state
from headwater.server.stored_events import read_page
from headwater.server.wire import as_received, gap_frame

__all__ = ["BACKFILL_PAGE_SIZE", "MAXIMUM_BACKFILL", "FilterMessage", "feed_endpoint"]

logger = logging.getLogger("headwater.server")

BACKFILL_PAGE_SIZE = 250
BACKFILL_FLUSH_TIMEOUT = 10.0
MAXIMUM_BACKFILL = datetime.timedelta(minutes=15)
MAX_FILTER_BYTES = 64 * 1024
"""The largest filter message an observer may send."""
WS_1008_POLICY_VIOLATION = 1008
_BATCH = 256
WS_1013_TRY_AGAIN_LATER = 1013


class FilterMessage(msgspec.Struct, forbid_unknown_fields=True):
    """The observer's second message: what to send, and whether to backfill first."""

    type: str
    filter: EventFilter = msgspec.field(default_factory=EventFilter)
    backfill: bool = True


def backfill_filter(event_filter: EventFilter, now: datetime.datetime) -> EventFilter:
    """The filter of the backfill query: at most 15 minutes back, oldest first."""
    earliest = now - MAXIMUM_BACKFILL
    since = event_filter.occurred.since
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=datetime.timezone.utc)
    if since is None or since < earliest:
        since = earliest
    occurred = EventOccurredFilter(since=since, until=event_filter.occurred.until)
    return msgspec.structs.replace(event_filter, occurred=occurred, order=EventOrder.ASC)


async def _read_filter(websocket: WebSocket) -> FilterMessage | None:
    data = await receive_first(websocket)
    if data is None:
        return None
    if len(data) > MAX_FILTER_BYTES:
        reason = f"Filter too large: {len(data)} bytes, at most {MAX_FILTER_BYTES}"
        await close_quietly(websocket, WS_1008_POLICY_VIOLATION, reason)
        return None
    try:
        message = msgspec.json.decode(data, type=FilterMessage)
        check_filter_cost(message.filter)
    except (msgspec.ValidationError, ValueError) as exc:
        await close_quietly(websocket, WS_1002_PROTOCOL_ERROR, f"Invalid filter: {exc}"[:120])
        return None
    except (msgspec.DecodeError, RecursionError):
        await close_quietly(websocket, WS_1002_PROTOCOL_ERROR, "Expected 'filter' message")
        return None
    if message.type != "filter":
        await close_quietly(websocket, WS_1002_PROTOCOL_ERROR, "Expected 'filter' message")
        return None
    return message


async def feed_endpoint(websocket: WebSocket) -> None:
    """Serve one observer until it disconnects."""
    state = get_state(websocket)
    if not await accept(websocket, state.authenticator):
        return
    message = await _read_filter(websocket)
    if message is None:
        return
    if len(state.observers) >= state.max_observers:
        await close_quietly(websocket, WS_1013_TRY_AGAIN_LATER, "Too many observers")
        return
    queue = state.fanout.add(message.filter, state.feed_buffer_size)
    state.observers.add(queue)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(_watch_disconnect, websocket, group.cancel_scope)
            try:
                await _stream(websocket, state, queue, message)
            except (WebSocketDisconnect, OSError):
                pass  # the client went away while we were sending
            except TimeoutError:
                await close_quietly(websocket, WS_1008_POLICY_VIOLATION, "Observer too slow")
            group.cancel_scope.cancel()
    finally:
        state.fanout.remove(queue)
        state.observers.discard(queue)


def _client(websocket: WebSocket) -> str:
    client = websocket.client
    return "?" if client is None else f"{client.host}:{client.port}"


async def _watch_disconnect(websocket: WebSocket, scope: anyio.CancelScope) -> None:
    # Observers send nothing after the filter; reading is how a departure is noticed (and
    # it keeps answering the client's keepalive pings).
    try:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
    except (WebSocketDisconnect, RuntimeError):
        pass
    scope.cancel()


async def _stream(
    websocket: WebSocket, state: ServerState, queue: ObserverQueue, message: FilterMessage
) -> None:
    event_filter = message.filter
    send = websocket.send_text
    sent: set[uuid.UUID] = set()
    if message.backfill:
        # Events published before the observer joined may still be on their way to the
        # database: let persistence commit them, or the backfill would miss them.
        if not await state.bus.aflush(BACKFILL_FLUSH_TIMEOUT):
            logger.warning("backfilling before every event published was stored")
        await _backfill(websocket, state, event_filter, sent)
    # Only events already buffered when the backfill ended can repeat it.
    overlap = queue.pending if sent else 0
    if not overlap:
        sent = set()
    matches = event_filter.matches
    while True:
        items = await queue.get_batch(_BATCH)
        if not items:
            return  # the queue was closed (server shutting down)
        # one deadline per batch (a scope per frame costs more than the frame)
        with anyio.fail_after(state.observer_send_timeout):  # the client stopped reading
            for item in items:
                duplicates = sent
                if overlap:
                    overlap -= 1
                    if overlap == 0:
                        sent = set()  # nothing after this item can repeat the backfill
                if type(item) is GapNotice:
                    await send(gap_frame(item.dropped))
                    continue
                received = as_received(item)
                if received.event.id in duplicates or not matches(received.event):
                    continue
                await send(received.frame())


async def _backfill(
    websocket: WebSocket, state: ServerState, event_filter: EventFilter, sent: set[uuid.UUID]
) -> None:
    query = backfill_filter(event_filter, datetime.datetime.now(datetime.timezone.utc))
    token: str | None = None
    while True:
        events, token = await read_page(
            state.database, query, limit=BACKFILL_PAGE_SIZE, page_token=token
        )
        for item in events:
            with anyio.fail_after(state.observer_send_timeout):
                await websocket.send_text(item.frame())
            sent.add(item.event.id)
        if token is None:
            return
