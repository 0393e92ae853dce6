"""``/api/events``: query stored events page by page, and post events over HTTP.

- ``POST /api/events/filter`` with ``{"filter": <EventFilter>, "limit": <1..50>}`` answers
  ``{"events": [...], "next_page": <absolute URL or null>}``; each event carries its
  ``received`` time. Unlike Prefect there is no ``total``: counting every match of a label
  filter means reading the whole time window, which a page must not cost.
- ``GET /api/events/filter/next?page-token=...`` is the next page. The token holds the filter,
  the limit and the position of the last event returned (keyset paging: events written
  meanwhile are neither repeated nor skipped). A token the server did not issue is a 403,
  as in Prefect.
- ``POST /api/events`` with a JSON array of events answers 204 once they are published.
  Every event is validated first: one invalid event rejects the whole request with 422
  naming its index and the field, and nothing is published.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from headwater.events.filters import EventFilter, check_filter_cost
from headwater.events.schema import Event, decode_event
from headwater.exceptions import InvalidEventError, InvalidPageTokenError
from headwater.server.errors import HTTPError, decode_body, read_body
from headwater.server.feed import MAX_FILTER_BYTES
from headwater.server.ingest import check_size, publish_received
from headwater.server.state import get_state
from headwater.server.stored_events import read_page
from headwater.server.wire import encode_event, utcnow

__all__ = ["EventsFilterBody", "routes"]

MAX_EVENTS_BODY_BYTES = 64 * 1024 * 1024
_encode = msgspec.json.encode


class EventsFilterBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Body of ``POST /api/events/filter``."""

    filter: EventFilter | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=50)] = 50


class _PageToken(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    filter: EventFilter
    limit: Annotated[int, msgspec.Meta(ge=1, le=50)]
    position: str


def _encode_token(event_filter: EventFilter, limit: int, position: str) -> str:
    raw = _encode(_PageToken(event_filter, limit, position))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str) -> _PageToken:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        return msgspec.json.decode(raw, type=_PageToken)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise HTTPError(403, "Invalid page token") from None


async def _page(request: Request, event_filter: EventFilter, limit: int, token: str | None) -> Any:
    database = get_state(request).database
    try:
        events, position = await read_page(database, event_filter, limit=limit, page_token=token)
    except InvalidPageTokenError:
        raise HTTPError(403, "Invalid page token") from None
    next_page = None
    if position is not None:
        next_token = _encode_token(event_filter, limit, position)
        next_page = str(
            request.url_for("events_filter_next").include_query_params(**{"page-token": next_token})
        )
    body = b'{"events":[' + b",".join(encode_event(item.event, item.received) for item in events)
    body += b'],"next_page":' + _encode(next_page) + b"}"
    return Response(body, media_type="application/json")


async def filter_events(request: Request) -> Response:
    body = await decode_body(request, EventsFilterBody, limit=MAX_FILTER_BYTES)
    event_filter = body.filter or EventFilter()
    try:
        check_filter_cost(event_filter)
    except ValueError as exc:
        raise HTTPError(422, str(exc)) from None
    result: Response = await _page(request, event_filter, body.limit, None)
    return result


async def filter_events_next(request: Request) -> Response:
    token = request.query_params.get("page-token")
    if not token:
        raise HTTPError(403, "Invalid page token")
    decoded = _decode_token(token)
    result: Response = await _page(request, decoded.filter, decoded.limit, decoded.position)
    return result


def _decode_events(body: bytes, maximum: int) -> list[Event]:
    try:
        raws = msgspec.json.decode(body, type=list[msgspec.Raw])
    except msgspec.ValidationError as exc:
        raise HTTPError(422, f"request body must be a JSON array of events: {exc}") from None
    except msgspec.DecodeError as exc:
        raise HTTPError(422, f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise HTTPError(422, "request body nests too deeply") from None
    events = []
    for index, raw in enumerate(raws):
        data = bytes(raw)
        try:
            check_size(data, maximum)
            events.append(decode_event(data))
        except InvalidEventError as exc:
            raise HTTPError(422, f"events[{index}]: {exc}; no event was stored") from None
    return events


async def post_events(request: Request) -> Response:
    state = get_state(request)
    body = await read_body(request, MAX_EVENTS_BODY_BYTES)
    events = _decode_events(body, state.settings.events_maximum_size_bytes)
    received = utcnow()
    for event in events:
        await publish_received(state.bus, event, received)
    return Response(status_code=204)


def routes() -> list[BaseRoute]:
    """The event routes, relative to ``/api`` (the websockets are added by the app)."""
    return [
        Route("/events/filter", filter_events, methods=["POST"]),
        Route(
            "/events/filter/next", filter_events_next, methods=["GET"], name="events_filter_next"
        ),
        Route("/events", post_events, methods=["POST"]),
    ]
