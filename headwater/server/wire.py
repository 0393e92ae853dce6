"""What the server's sockets carry: received events and the JSON frames of Prefect's protocol.

An event accepted from outside (``/api/events/in``, ``POST /api/events``, a webhook) is
published on the bus as a :class:`ReceivedEvent`: the event plus the moment the server took
it in. Persistence reads it like any event (``to_event()``) and stamps its own ``received``
column when it writes the row, a few milliseconds later; observers get the server's stamp.

Its ``/events/out`` frame is encoded once, on first use, and shared by every observer, so a
hundred observers cost one encoding, not a hundred.

Frames (one JSON object per websocket text message):

- ``{"type": "auth_success"}``: the handshake succeeded;
- ``{"type": "event", "event": {...event, "received": ...}}``: one event;
- ``{"type": "gap", "dropped": n}``: headwater's addition; an observer too slow to keep up
  missed ``n`` events here (Prefect drops them silently);
- ``{"type": "error", "index": n, "detail": "..."}``: headwater's addition on
  ``/events/in``; the ``n``-th event frame (from 0) was rejected, the connection goes on.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import msgspec

from headwater.events.schema import Event, EventSource

__all__ = [
    "AUTH_SUCCESS",
    "ReceivedEvent",
    "as_received",
    "encode_event",
    "error_frame",
    "event_frame",
    "gap_frame",
    "utcnow",
]

AUTH_SUCCESS = '{"type":"auth_success"}'

_encoder = msgspec.json.Encoder()
_encode = _encoder.encode
_UTC = datetime.timezone.utc


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(_UTC)


def encode_event(event: Event, received: datetime.datetime | None) -> bytes:
    """The event's JSON object, with ``received`` appended when known."""
    data = _encode(event)
    if received is None:
        return data
    return data[:-1] + b',"received":' + _encode(received) + b"}"


def event_frame(event: Event, received: datetime.datetime | None) -> str:
    """The ``/events/out`` text frame for one event."""
    return (b'{"type":"event","event":' + encode_event(event, received) + b"}").decode()


def gap_frame(dropped: int) -> str:
    """The frame telling an observer that ``dropped`` events were lost at this point."""
    return f'{{"type":"gap","dropped":{int(dropped)}}}'


def error_frame(index: int, detail: str) -> str:
    """The frame rejecting event frame ``index`` of an ingest connection."""
    return _encode({"type": "error", "index": index, "detail": detail}).decode()


class ReceivedEvent:
    """An event the server accepted from outside, and when; published on the bus as is.

    It satisfies :class:`~headwater.events.schema.EventSource` (``resource_id``,
    ``to_event()``), so every consumer can read it; the feed also uses :meth:`frame`.
    """

    __slots__ = ("_frame", "event", "received", "untrusted")

    def __init__(
        self, event: Event, received: datetime.datetime | None = None, untrusted: bool = False
    ) -> None:
        self.event = event
        self.received = received or utcnow()
        # from a sender without credentials (a webhook): stored, never a run's state change
        self.untrusted = untrusted
        self._frame: str | None = None

    @property
    def resource_id(self) -> str:
        return self.event.resource_id

    @property
    def id(self) -> uuid.UUID:
        return self.event.id

    @property
    def event_name(self) -> str:
        """The event's name, without materialising anything (as transition records have it)."""
        return self.event.event

    def to_event(self) -> Event:
        return self.event

    def frame(self) -> str:
        """The ``/events/out`` frame, encoded once and shared by every observer."""
        frame = self._frame
        if frame is None:
            frame = self._frame = event_frame(self.event, self.received)
        return frame

    def __repr__(self) -> str:
        return f"<ReceivedEvent {self.event.event!r} {self.event.id}>"


def as_received(item: EventSource | Any) -> ReceivedEvent:
    """Wrap a bus item that did not come from outside (stamped now, when first seen)."""
    if type(item) is ReceivedEvent:
        return item
    return ReceivedEvent(item.to_event())
