"""``/api/events/in``: events from other processes, one JSON event per websocket message.

After the handshake (:mod:`headwater.server.handshake`) every text (or binary) message is one
event. The server validates it, stamps ``received``, and publishes it on the bus, where
persistence and every observer pick it up.

Where headwater differs from Prefect, on purpose (Prefect's flaw: one bad event closes the
socket, that event is lost silently and the client re-sends what was in flight):

- a message that is not a valid event, or is larger than ``HEADWATER_EVENTS_MAXIMUM_SIZE_BYTES``,
  gets ``{"type": "error", "index": n, "detail": "..."}`` back (``n`` counts the event
  messages of this connection from 0) and the connection goes on;
- a ping is answered only once every message before it has been published *and committed*
  (see :mod:`headwater.server.protocol`), so the client's ping/pong checkpoint is exact
  and survives a server crash: what was confirmed is in the database.

Back-pressure: when a lossless subscriber (persistence) is full, the handler stops reading
until it has room, instead of blocking the server's event loop in ``publish``; the client's
sends then slow down through TCP. Messages larger than uvicorn's websocket limit (16 MiB)
close the connection with 1009, as any websocket server must.
"""

from __future__ import annotations

import datetime

import anyio
from starlette.websockets import WebSocket, WebSocketDisconnect

from headwater.events.bus import EventBus
from headwater.events.schema import Event, decode_event
from headwater.exceptions import InvalidEventError
from headwater.server.handshake import accept
from headwater.server.protocol import BARRIER_EXTENSION
from headwater.server.state import get_state
from headwater.server.wire import ReceivedEvent, error_frame, utcnow

__all__ = ["check_size", "ingest_endpoint", "publish_received", "wait_for_room"]

ACK_TIMEOUT = 30.0
"""Seconds a confirmation waits for the commit of what it confirms; then none is given."""

_FIRST_DELAY = 0.0005
_LONGEST_DELAY = 0.02


async def wait_for_room(bus: EventBus) -> None:
    """Yield until no lossless subscriber is full, so that ``publish`` will not block."""
    delay = _FIRST_DELAY
    while bus.saturated():
        await anyio.sleep(delay)
        delay = min(delay * 2, _LONGEST_DELAY)


async def publish_received(
    bus: EventBus, event: Event, received: datetime.datetime | None = None, untrusted: bool = False
) -> ReceivedEvent:
    """Publish an event that came from outside, once the bus has room for it.

    ``untrusted`` marks one from a sender without credentials (a webhook): storage keeps it
    but never lets it change a run's state.
    """
    if bus.saturated():
        await wait_for_room(bus)
    item = ReceivedEvent(event, received, untrusted)
    bus.publish(item)
    return item


def check_size(data: str | bytes, maximum: int) -> None:
    """Refuse a serialised event over ``maximum`` bytes (cheaply: most are far below).

    Raises:
        InvalidEventError: the event is too large; the message gives both sizes.
    """
    size = len(data)
    if isinstance(data, str) and maximum // 4 < size <= maximum:
        size = len(data.encode("utf-8", "surrogatepass"))  # a character is 1-4 bytes
    if size > maximum:
        raise InvalidEventError(f"event is {size} bytes; at most {maximum} bytes are accepted")


async def ingest_endpoint(websocket: WebSocket) -> None:
    """Serve one ingest connection until the client closes it."""
    state = get_state(websocket)
    if not await accept(websocket, state.authenticator):
        return
    bus = state.bus
    register = websocket.scope.get("extensions", {}).get(BARRIER_EXTENSION)
    if register is not None:
        # pongs wait until persistence has committed what came before them
        register(lambda: bus.aflush(ACK_TIMEOUT))
    maximum = state.settings.events_maximum_size_bytes
    saturated = bus.saturated
    publish = bus.publish
    receive = websocket.receive
    index = 0
    try:
        while True:
            message = await receive()
            data = message.get("text")
            if data is None:
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes") or b""
            try:
                check_size(data, maximum)
                event = decode_event(data)
            except InvalidEventError as exc:
                await websocket.send_text(error_frame(index, str(exc)))
            else:
                if saturated():
                    await wait_for_room(bus)
                # Published before the next receive(): that is what makes a pong a checkpoint.
                publish(ReceivedEvent(event, utcnow()))
            index += 1
    except WebSocketDisconnect:
        return
