"""The forwarder in this process: a server restart, rejected credentials, a refused event."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from client_helpers import AUTH_STRING, ServerProcess, outbox_rows, wait_until

from headwater import emit_event
from headwater.client import ensure_forwarder, stop_forwarder
from headwater.events import get_bus
from headwater.settings import SecretValue, temporary_settings


@pytest.fixture(autouse=True)
def stopped() -> Iterator[None]:
    yield
    stop_forwarder()


def emit(count: int, prefix: str = "test.inprocess", size: int = 0) -> None:
    for number in range(count):
        emit_event(
            "test.forwarded",
            resource={"headwater.resource.id": f"{prefix}.{number}"},
            payload={"blob": "x" * size},
        )


def stored(server: ServerProcess, prefix: str) -> int:
    body = {"filter": {"resource": {"id_prefix": [prefix]}}, "limit": 50}
    return len(server.post("/events/filter", body)["events"])


def test_events_go_to_the_outbox_while_the_server_restarts_then_follow(
    start_server: Callable[..., ServerProcess], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "headwater.client")
    server = start_server()
    with temporary_settings(home=tmp_path, api_url=server.api_url, api_reconnect_max_delay=0.2):
        forwarder = ensure_forwarder()
        assert forwarder is not None and forwarder.live
        emit(3, "test.before")
        assert get_bus().flush(timeout=10) and forwarder.stats.sent == 3

        server.stop()
        wait_until(lambda: not forwarder.live)
        emit(4, "test.during")
        assert get_bus().flush(timeout=10)
        assert forwarder.stats.stored == 4 and len(outbox_rows(tmp_path)) == 4

        server.start()
        wait_until(lambda: forwarder.live)
        emit(2, "test.after")
        assert get_bus().flush(timeout=10)
    assert forwarder.stats.drained == 4 and forwarder.stats.sent == 5
    wait_until(lambda: stored(server, "test.during") == 4 and stored(server, "test.after") == 2)
    messages = [record.message for record in caplog.records]
    assert sum("events are kept in" in message for message in messages) == 1
    assert any("reachable again" in message for message in messages)


def test_rejected_credentials_are_logged_once_and_events_kept(
    start_server: Callable[..., ServerProcess], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_server(auth=AUTH_STRING)
    with temporary_settings(
        home=tmp_path,
        api_url=server.api_url,
        api_auth_string=SecretValue("flow-user:not-this-one"),
        api_reconnect_max_delay=0.1,
    ):
        forwarder = ensure_forwarder()
        assert forwarder is not None and forwarder.auth_error is not None
        emit(3)
        assert get_bus().flush(timeout=10)
        assert forwarder.stats.connections == 0 and forwarder.stats.stored == 3
    assert len(outbox_rows(tmp_path)) == 3
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "credentials rejected" in errors[0].message and "not-this-one" not in errors[0].message


def test_an_event_the_server_refuses_is_logged_and_the_rest_flow(
    start_server: Callable[..., ServerProcess], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_server(HEADWATER_EVENTS_MAXIMUM_SIZE_BYTES="2000")
    with temporary_settings(home=tmp_path, api_url=server.api_url):
        forwarder = ensure_forwarder()
        assert forwarder is not None
        emit(1, "test.big", size=5000)
        emit(2, "test.small")
        assert get_bus().flush(timeout=10)
        wait_until(lambda: forwarder.stats.rejected == 1)
    wait_until(lambda: stored(server, "test.small") == 2)
    assert stored(server, "test.big") == 0
    assert any("refused an event" in record.message for record in caplog.records)
