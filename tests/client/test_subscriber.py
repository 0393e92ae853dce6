"""EventSubscriber: backfill, live events, and resuming without repeats after a server restart."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable

import anyio
import httpx
import pytest
from client_helpers import ServerProcess

from headwater.client.subscriber import (
    DEFAULT_BACKFILL,
    RESUME_MARGIN,
    EventSubscriber,
    resume_filter,
)
from headwater.events import Event
from headwater.events.filters import (
    EventFilter,
    EventOccurredFilter,
    EventOrder,
    EventResourceFilter,
)
from headwater.exceptions import ApiUnavailableError
from headwater.settings import temporary_settings

NOW = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)


def test_resume_filter_starts_a_margin_before_the_last_event_seen() -> None:
    plain = resume_filter(EventFilter(), None, NOW)
    assert plain.occurred.since == NOW - DEFAULT_BACKFILL and plain.order is EventOrder.ASC
    own = EventFilter(occurred=EventOccurredFilter(since=NOW - datetime.timedelta(hours=1)))
    assert resume_filter(own, None, NOW).occurred.since == NOW - datetime.timedelta(hours=1)
    last = NOW - datetime.timedelta(seconds=5)
    assert resume_filter(own, last, NOW).occurred.since == last - RESUME_MARGIN


async def post(server: ServerProcess, resource: str, name: str) -> str:
    event_id = str(uuid.uuid4())
    body = [{"event": name, "resource": {"headwater.resource.id": resource}, "id": event_id}]
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{server.api_url}/events", json=body)
    response.raise_for_status()
    return event_id


@pytest.mark.anyio
async def test_subscriber_resumes_after_a_restart_without_repeats(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server()
    resource = f"test.sub.{uuid.uuid4().hex}"
    query = EventFilter(resource=EventResourceFilter(id=[resource]))
    statuses: list[str] = []
    received: list[Event] = []
    with temporary_settings(api_url=server.api_url, api_reconnect_max_delay=0.3) as settings:
        first = await post(server, resource, "test.before")  # backfilled
        async with EventSubscriber(settings, query, on_status=statuses.append) as subscriber:
            with anyio.fail_after(30):
                received.append(await subscriber.__anext__())
                second = await post(server, resource, "test.live")
                received.append(await subscriber.__anext__())
                await anyio.to_thread.run_sync(server.stop)
                await anyio.to_thread.run_sync(server.start)
                third = await post(server, resource, "test.after")
                # The re-subscription backfills all three; only the new one comes through.
                received.append(await subscriber.__anext__())
            assert subscriber.reconnections == 1
    assert [str(event.id) for event in received] == [first, second, third]
    assert statuses[0].startswith("lost the connection (closed with code 1012")
    assert statuses[-1].startswith("reconnected to ws://")


@pytest.mark.anyio
async def test_subscriber_needs_a_reachable_server() -> None:
    refused = pytest.raises(ApiUnavailableError, match="connection refused")
    with temporary_settings(api_url="http://127.0.0.1:9/api") as settings, refused:
        async with EventSubscriber(settings):
            pass
