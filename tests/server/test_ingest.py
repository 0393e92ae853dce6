"""/api/events/in: bad frames get error frames and the socket survives; pongs are checkpoints."""

from __future__ import annotations

import json
from collections.abc import Callable

import anyio
import httpx
import msgspec
import pytest
from server_helpers import TIMEOUT, RunningServer, eventually, make_event, open_socket, unique

from headwater.events import EventBus, get_bus
from headwater.server.wire import ReceivedEvent

pytestmark = pytest.mark.anyio


def _json(event: object) -> str:
    return msgspec.json.encode(event).decode()


def stored(server: RunningServer, resource_id: str) -> list[dict[str, object]]:
    body = {"filter": {"resource": {"id": [resource_id]}, "order": "ASC"}, "limit": 50}
    response = httpx.post(f"{server.url}/api/events/filter", json=body)
    assert response.status_code == 200
    events: list[dict[str, object]] = response.json()["events"]
    return events


async def test_bad_frames_get_error_frames_and_the_connection_survives(
    server: RunningServer,
) -> None:
    resource_id = unique("ingest")
    maximum = server.state.settings.events_maximum_size_bytes
    huge = make_event(resource_id, padding="x" * (maximum + 10))
    frames = [
        _json(make_event(resource_id, n=0)),
        "{not json",
        json.dumps({"event": "test.bad", "resource": {"some.label": "x"}}),
        json.dumps({"event": "test.bad", "resource": {"headwater.resource.id": "r"}, "id": 7}),
        _json(huge),
        json.dumps([1, 2, 3]),
        _json(make_event(resource_id, n=1)),
    ]
    async with await open_socket(server, "/api/events/in") as websocket:
        for frame in frames:
            await websocket.send(frame)
        errors = []
        with anyio.fail_after(TIMEOUT):
            for _ in range(5):
                errors.append(json.loads(await websocket.recv()))
        await websocket.send(_json(make_event(resource_id, n=2)))
        await websocket.ping()
    assert [error["index"] for error in errors] == [1, 2, 3, 4, 5]
    assert all(error["type"] == "error" for error in errors)
    details = [error["detail"] for error in errors]
    assert details[0].startswith("malformed event JSON")
    assert "missing a non-empty 'headwater.resource.id'" in details[1]
    assert "Expected `uuid`, got `int` - at `$.id`" in details[2]
    assert details[3].endswith(f"at most {maximum} bytes are accepted")
    assert "Expected `object`, got `array`" in details[4]
    await eventually(lambda: len(stored(server, resource_id)) == 3)
    assert [event["payload"]["n"] for event in stored(server, resource_id)] == [0, 1, 2]


async def test_a_pong_means_every_earlier_event_is_published(server: RunningServer) -> None:
    resource_id = unique("checkpoint")
    count = 2000
    subscription = get_bus().subscribe(buffer_size=100_000, materialise=False)
    async with subscription, await open_socket(server, "/api/events/in") as websocket:
        for n in range(count):
            await websocket.send(_json(make_event(resource_id, n=n)))
        pong = await websocket.ping()
        with anyio.fail_after(TIMEOUT):
            await pong
        # No waiting here: the pong itself says they are all on the bus already.
        items = await subscription.get_batch(100_000, max_latency=0)
    mine = [
        item.event.payload["n"]
        for item in items
        if isinstance(item, ReceivedEvent) and item.resource_id == resource_id
    ]
    assert mine == list(range(count))


async def test_events_come_out_with_a_received_stamp(server: RunningServer) -> None:
    resource_id = unique("received")
    event = make_event(resource_id)
    async with await open_socket(server, "/api/events/in") as websocket:
        await websocket.send(_json(event))
        await websocket.ping()
    await eventually(lambda: len(stored(server, resource_id)) == 1)
    (found,) = stored(server, resource_id)
    assert found["id"] == str(event.id)
    assert isinstance(found["received"], str) and found["received"] >= found["occurred"]  # type: ignore[operator]


async def test_binary_frames_are_read_as_json_too(server: RunningServer) -> None:
    resource_id = unique("binary")
    async with await open_socket(server, "/api/events/in") as websocket:
        await websocket.send(_json(make_event(resource_id)).encode())
        await websocket.ping()
    await eventually(lambda: len(stored(server, resource_id)) == 1)


async def test_a_full_lossless_subscriber_slows_the_sender_not_the_server(
    start_server: Callable[..., RunningServer],
) -> None:
    bus = EventBus()
    server = start_server(bus=bus)
    # A lossless consumer (like persistence) that has room for 5 events and is not reading.
    subscription = bus.subscribe(lossless=True, buffer_size=5)
    try:
        async with await open_socket(server, "/api/events/in") as websocket:
            for n in range(12):
                await websocket.send(_json(make_event("backpressure", n=n)))
            pong = await websocket.ping()
            await eventually(lambda: subscription.pending == 5)
            # The server's loop is free (it waits for room without blocking in publish)...
            async with httpx.AsyncClient() as client:
                assert (await client.get(f"{server.url}/api/ready")).status_code == 200
            assert not pong.done()  # ...and the checkpoint is not confirmed yet.
            received = []
            with anyio.fail_after(TIMEOUT):
                while len(received) < 12:
                    batch = await subscription.get_batch(5, max_latency=0)
                    subscription.ack()
                    received += [item.payload["n"] for item in batch]
                await pong
    finally:
        subscription.close()
    assert received == list(range(12))
