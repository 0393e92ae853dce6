"""An event a server keeps dying on is set aside, and the events after it get through.

The server is a real headwater server on loopback with one fault injected: its ingest
handler crashes on any event named ``poison.*`` (as the RecursionError of a deeply nested
event once did), so the connection dies without confirming anything. headwater's server
now answers such input with an error frame (tests/server); another, older or buggy server
might not, and one bad event must not block every later one for good.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import anyio
import pytest

from headwater.client.forwarder import PARK_AFTER, Forwarder
from headwater.events import Event, EventBus
from headwater.events.schema import decode_event
from headwater.server import ingest
from headwater.server.serve import build_config, make_server
from headwater.settings import get_settings, temporary_settings


def _crashing_decode(data: bytes | str) -> Event:
    event = decode_event(data)
    if event.event.startswith("poison."):
        raise RuntimeError("the server's ingest crashed on this event")
    return event


def test_a_poison_event_is_parked_and_the_outbox_moves_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "decode_event", _crashing_decode)
    server_bus = EventBus()
    stored: list[str] = []
    server_bus.add_consumer(lambda event: stored.append(event.event), name="stored")
    with temporary_settings(home=tmp_path / "server"):
        config = build_config(
            "127.0.0.1",
            0,
            bus=server_bus,
            manage_persistence=False,
            log_level="critical",
            access_log=False,
        )
    server = make_server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        url = f"http://127.0.0.1:{port}/api"
        with temporary_settings(home=tmp_path, api_url=url, api_reconnect_max_delay=0.05):

            async def main() -> Forwarder:
                bus = EventBus()
                forwarder = await Forwarder.open(get_settings(), bus)
                async with anyio.create_task_group() as group:
                    group.start_soon(forwarder.serve)
                    for name in ["before.1", "before.2", "poison.pill", "after.1", "after.2"]:
                        bus.publish(Event(event=name, resource={"headwater.resource.id": "r"}))
                    with anyio.fail_after(30):
                        while forwarder.stats.drained + forwarder.stats.sent < 4:
                            await anyio.sleep(0.05)
                    await forwarder.aclose(5)
                    group.cancel_scope.cancel()
                return forwarder

            forwarder = anyio.run(main)
    finally:
        server.should_exit = True
        thread.join(10)
    assert server_bus.flush(timeout=10)
    assert [name for name in stored if name.startswith("after.")] == ["after.1", "after.2"]
    assert "poison.pill" not in stored and "before.1" in stored
    assert forwarder.stats.parked == 1
    with sqlite3.connect(tmp_path / "outbox.db") as db:
        parked = db.execute("SELECT data, reason FROM parked").fetchall()
    assert len(parked) == 1 and b"poison.pill" in bytes(parked[0][0])
    assert f"dropped the connection {PARK_AFTER} times" in parked[0][1]
