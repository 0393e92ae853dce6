"""/api/events/out: filter, backfill then live with no gap or repeat, many observers, slow ones."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
from server_helpers import TIMEOUT, RunningServer, eventually, make_event, open_socket, unique
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from headwater.events import get_bus

pytestmark = pytest.mark.anyio


async def observe(
    server: RunningServer, resource_id: str, *, backfill: bool = True
) -> ClientConnection:
    websocket = await open_socket(server, "/api/events/out")
    event_filter = {"resource": {"id": [resource_id]}}
    await websocket.send(
        json.dumps({"type": "filter", "filter": event_filter, "backfill": backfill})
    )
    return websocket


async def subscribed(websocket: ClientConnection) -> None:
    """Wait for the pong: the server answers it once it has read (and acted on) the filter."""
    with anyio.fail_after(TIMEOUT):
        await (await websocket.ping())


async def read_until(
    websocket: ClientConnection, done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    with anyio.fail_after(TIMEOUT):
        while not done(frames):
            frames.append(json.loads(await websocket.recv()))
    return frames


def numbers(frames: list[dict[str, Any]]) -> list[int]:
    return [frame["event"]["payload"]["n"] for frame in frames if frame["type"] == "event"]


async def test_backfill_then_live(server: RunningServer) -> None:
    resource_id = unique("feed")
    bus = get_bus()
    for n in range(3):
        bus.publish(make_event(resource_id, n=n))
    assert bus.flush(timeout=20)
    async with await observe(server, resource_id) as websocket:
        frames = await read_until(websocket, lambda frames: len(frames) == 3)
        for n in range(3, 6):
            bus.publish(make_event(resource_id, n=n))
        frames += await read_until(websocket, lambda more: len(more) == 3)
    assert numbers(frames) == list(range(6))
    assert all(frame["type"] == "event" and "received" in frame["event"] for frame in frames)


async def test_without_backfill_only_live_events_come(server: RunningServer) -> None:
    resource_id = unique("live")
    get_bus().publish(make_event(resource_id, n=0))
    assert get_bus().flush(timeout=20)
    async with await observe(server, resource_id, backfill=False) as websocket:
        await subscribed(websocket)
        get_bus().publish(make_event(resource_id, n=1))
        frames = await read_until(websocket, lambda frames: len(frames) == 1)
    assert numbers(frames) == [1]


async def test_no_gap_and_no_repeat_at_the_backfill_live_boundary(server: RunningServer) -> None:
    resource_id = unique("boundary")
    bus = get_bus()
    stop = threading.Event()
    published: list[int] = []

    def publisher() -> None:
        n = 0
        while not stop.is_set() or n < 400:
            bus.publish(make_event(resource_id, n=n))
            published.append(n)
            n += 1
            time.sleep(0.0005)

    thread = threading.Thread(target=publisher)
    thread.start()
    try:
        await eventually(lambda: len(published) >= 200)  # some stored, some in flight
        async with await observe(server, resource_id) as websocket:
            await eventually(lambda: len(published) >= 300)
            stop.set()
            thread.join(TIMEOUT)
            frames = await read_until(websocket, lambda frames: len(frames) == len(published))
            await websocket.ping()  # nothing more is on its way
            with anyio.move_on_after(0.2):
                frames.append(json.loads(await websocket.recv()))
    finally:
        stop.set()
        thread.join(TIMEOUT)
    assert numbers(frames) == published


async def test_filter_applies_to_live_events(server: RunningServer) -> None:
    wanted, other = unique("wanted"), unique("other")
    async with await observe(server, wanted, backfill=False) as websocket:
        await subscribed(websocket)
        for n in range(3):
            get_bus().publish(make_event(other, n=n))
            get_bus().publish(make_event(wanted, n=n))
        frames = await read_until(websocket, lambda frames: len(frames) == 3)
    assert {frame["event"]["resource"]["headwater.resource.id"] for frame in frames} == {wanted}


@pytest.mark.parametrize(
    "message",
    [
        {"type": "filter", "filter": {"event": {"prefix": "not-a-list"}}},
        {"type": "subscribe", "filter": {}},
        "just text",
    ],
)
async def test_bad_filter_message_closes_1002(server: RunningServer, message: Any) -> None:
    async with await open_socket(server, "/api/events/out") as websocket:
        await websocket.send(json.dumps(message) if isinstance(message, dict) else message)
        with anyio.fail_after(TIMEOUT), pytest.raises(ConnectionClosed) as caught:
            await websocket.recv()
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 1002


async def test_fifty_observers_all_receive_everything(server: RunningServer) -> None:
    resource_id = unique("many")
    sockets = [await observe(server, resource_id, backfill=False) for _ in range(50)]
    try:
        for websocket in sockets:
            await subscribed(websocket)
        await eventually(lambda: len(server.state.observers) >= 50)
        for n in range(100):
            get_bus().publish(make_event(resource_id, n=n))
        results: list[list[int]] = []

        async def collect(websocket: ClientConnection) -> None:
            frames = await read_until(websocket, lambda frames: len(frames) == 100)
            results.append(numbers(frames))

        async with anyio.create_task_group() as group:
            for websocket in sockets:
                group.start_soon(collect, websocket)
    finally:
        for websocket in sockets:
            await websocket.close()
    assert results == [list(range(100))] * 50


async def test_a_slow_observer_gets_a_gap_while_fast_ones_get_everything(
    start_server: Callable[..., RunningServer],
) -> None:
    server = start_server(feed_buffer_size=256)
    resource_id = unique("slow")
    total, chunk = 2000, 100
    padding = "x" * 16_000  # 32 MB in all: more than the socket buffers on the way hold
    slow = await observe(server, resource_id, backfill=False)
    fast = [await observe(server, resource_id, backfill=False) for _ in range(2)]
    try:
        for websocket in (slow, *fast):
            await subscribed(websocket)
        await eventually(lambda: len(server.state.observers) == 3)
        fast_frames: list[list[dict[str, Any]]] = [[], []]

        async def drain(frames: list[dict[str, Any]], websocket: ClientConnection) -> None:
            while len(frames) < total:
                frames.append(json.loads(await websocket.recv()))

        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as group:
                for frames, websocket in zip(fast_frames, fast, strict=True):
                    group.start_soon(drain, frames, websocket)
                # The slow observer reads nothing meanwhile. Publishing never waits for it;
                # it is paced by the fast ones only, so that their buffers never overflow.
                for start in range(0, total, chunk):
                    for n in range(start, start + chunk):
                        get_bus().publish(make_event(resource_id, n=n, padding=padding))
                    target = start + chunk
                    await eventually(lambda t=target: all(len(f) >= t for f in fast_frames))
        assert [numbers(frames) for frames in fast_frames] == [list(range(total))] * 2

        # Now it reads: what it had room for, a gap notice where events were dropped, and
        # the later events.
        seen: list[dict[str, Any]] = []

        def ended() -> bool:
            return bool(seen) and seen[-1].get("event", {}).get("event") == "test.end"

        async def read_slow() -> None:
            while not ended():
                seen.append(json.loads(await slow.recv()))

        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as group:
                group.start_soon(read_slow)
                while not ended():
                    get_bus().publish(make_event(resource_id, "test.end"))
                    await anyio.sleep(0.05)
    finally:
        for websocket in (slow, *fast):
            await websocket.close()
    gaps = [frame["dropped"] for frame in seen if frame["type"] == "gap"]
    received = numbers([f for f in seen if f.get("event", {}).get("event") == "test.happened"])
    assert gaps and all(dropped > 0 for dropped in gaps)
    assert len(received) < total
    assert len(received) + sum(gaps) >= total
    assert received == sorted(received)  # in order, with holes only where the gaps are


async def test_a_killed_client_does_not_leak_its_subscription(server: RunningServer) -> None:
    resource_id = unique("killed")
    bus = get_bus()
    await eventually(lambda: not server.state.observers)
    baseline = bus.subscriber_count
    websocket = await observe(server, resource_id, backfill=False)
    await subscribed(websocket)
    await eventually(lambda: server.state.fanout.observers == 1)
    assert bus.subscriber_count == baseline  # observers share the fan-out's one subscription
    for n in range(50):
        bus.publish(make_event(resource_id, n=n, padding="y" * 10_000))
    await websocket.recv()  # mid-stream
    websocket.transport.abort()  # no close frame, no FIN handshake: the process died
    await eventually(lambda: server.state.fanout.observers == 0)
    await eventually(lambda: not server.state.observers)
    assert httpx.get(f"{server.url}/api/ready").json()["observers"] == 0


async def test_observers_beyond_the_limit_are_told_to_come_back_later(
    start_server: Callable[..., RunningServer],
) -> None:
    server = start_server(max_observers=2)
    first = await observe(server, "limit", backfill=False)
    second = await observe(server, "limit", backfill=False)
    try:
        await subscribed(first)
        await subscribed(second)
        third = await observe(server, "limit", backfill=False)
        with anyio.fail_after(TIMEOUT), pytest.raises(ConnectionClosed) as caught:
            await third.recv()
        assert caught.value.rcvd is not None
        assert (caught.value.rcvd.code, caught.value.rcvd.reason) == (1013, "Too many observers")
    finally:
        await first.close()
        await second.close()


async def test_an_observer_that_stops_reading_is_dropped_and_frees_its_slot(
    start_server: Callable[..., RunningServer],
) -> None:
    server = start_server(observer_send_timeout=0.5, feed_buffer_size=100_000)
    resource_id = unique("stalled")
    websocket = await observe(server, resource_id, backfill=False)
    await subscribed(websocket)
    await eventually(lambda: len(server.state.observers) == 1)
    bus = get_bus()
    # far more than the client's queue and both TCP buffers hold: the server's send blocks
    for n in range(400):
        bus.publish(make_event(resource_id, n=n, padding="z" * 100_000))
    await eventually(lambda: not server.state.observers, timeout=30)
    assert server.state.fanout.observers == 0
    websocket.transport.abort()


async def test_observers_whose_filters_match_nothing_cost_the_publisher_nothing(
    server: RunningServer,
) -> None:
    bus = get_bus()
    await eventually(lambda: not server.state.observers)
    baseline = bus.subscriber_count
    idle = []
    for _ in range(50):
        websocket = await open_socket(server, "/api/events/out")
        await websocket.send(
            json.dumps({"type": "filter", "filter": {"event": {"name": ["never.happens"]}}})
        )
        idle.append(websocket)
    resource_id = unique("busy")
    watcher = await observe(server, resource_id, backfill=False)
    try:
        for websocket in [*idle, watcher]:
            await subscribed(websocket)
        await eventually(lambda: server.state.fanout.observers == 51)
        assert bus.subscriber_count == baseline  # one fan-out, however many observers
        for n in range(100):
            bus.publish(make_event(resource_id, n=n))
        frames = await read_until(watcher, lambda got: len(got) >= 100)
        assert [f["event"]["payload"]["n"] for f in frames] == list(range(100))
        # nothing was routed to the idle observers at all
        assert all(queue.pending == 0 and queue.dropped == 0 for queue in server.state.observers)
    finally:
        for websocket in [*idle, watcher]:
            await websocket.close()


async def test_a_filter_with_a_misspelt_field_is_refused_not_matched_to_everything(
    server: RunningServer,
) -> None:
    for message in [
        {"type": "filter", "filter": {"evnt": {"name": ["x"]}}},
        {"type": "filter", "filtr": {"event": {"name": ["x"]}}},
    ]:
        websocket = await open_socket(server, "/api/events/out")
        await websocket.send(json.dumps(message))
        with anyio.fail_after(TIMEOUT), pytest.raises(ConnectionClosed) as caught:
            await websocket.recv()
        assert caught.value.rcvd is not None and caught.value.rcvd.code == 1002
        assert "unknown field" in caught.value.rcvd.reason
    reply = httpx.post(
        f"{server.url}/api/events/filter", json={"filter": {"resource": {"idd": ["x"]}}}
    )
    assert reply.status_code == 422 and "idd" in reply.json()["detail"]


async def test_a_filter_too_large_or_too_costly_is_refused(server: RunningServer) -> None:
    websocket = await open_socket(server, "/api/events/out")
    names = [f"name.{n}" for n in range(5000)]
    await websocket.send(json.dumps({"type": "filter", "filter": {"event": {"name": names}}}))
    with anyio.fail_after(TIMEOUT), pytest.raises(ConnectionClosed) as caught:
        await websocket.recv()
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 1002
    assert "at most 1000" in caught.value.rcvd.reason
    huge = {"type": "filter", "filter": {"event": {"prefix": ["p" * 100_000]}}}
    websocket = await open_socket(server, "/api/events/out")
    await websocket.send(json.dumps(huge))
    with anyio.fail_after(TIMEOUT), pytest.raises(ConnectionClosed) as caught:
        await websocket.recv()
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 1008
    assert httpx.get(f"{server.url}/api/health").status_code == 200
