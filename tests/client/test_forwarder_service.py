"""Starting the forwarder in this process: from a flow run's start hook, and stopping it."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from client_helpers import ServerProcess, free_port, wait_until

from headwater import emit_event, flow, task
from headwater.client import ensure_forwarder, get_forwarder, stop_forwarder
from headwater.events import get_bus
from headwater.exceptions import StorageError
from headwater.settings import temporary_settings


@pytest.fixture(autouse=True)
def stopped() -> Iterator[None]:
    yield
    stop_forwarder()


@task
def add(a: int, b: int) -> int:
    return a + b


@flow
def total(count: int) -> int:
    return sum(add(n, n) for n in range(count))


def owners(path: Path) -> list[str | None]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT owner FROM outbox ORDER BY seq")]


def test_nothing_to_forward_without_an_api_url_or_with_events_off(tmp_path: Path) -> None:
    with temporary_settings(home=tmp_path, api_url=None):
        assert ensure_forwarder() is None
    with temporary_settings(home=tmp_path, api_url="http://127.0.0.1:9/api", events_enabled=False):
        assert ensure_forwarder() is None


def test_a_flow_run_starts_the_forwarder_and_its_events_reach_the_server(
    server: ServerProcess, tmp_path: Path
) -> None:
    with temporary_settings(home=tmp_path, database_url=None, api_url=server.api_url):
        assert total(3) == 6
        forwarder = get_forwarder()
        assert forwarder is not None and forwarder.live
        assert forwarder.stats.sent == 3 + 3 * 3 and forwarder.stats.stored == 0
        assert "Forwarder" in repr(forwarder) and "live" in repr(forwarder)
        runs = wait_until(lambda: server.post("/flow_runs/filter", {"flow_name": ["total"]}))
    assert runs[0]["flow_name"] == "total"


def test_flush_returns_once_events_are_in_the_outbox_when_the_server_is_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{free_port()}/api"
    with temporary_settings(home=tmp_path, api_url=url, api_reconnect_max_delay=0.2):
        forwarder = ensure_forwarder()
        assert forwarder is not None and not forwarder.live
        for number in range(5):
            emit_event("test.offline", resource={"headwater.resource.id": f"test.offline.{number}"})
        assert get_bus().flush(timeout=10)
        assert forwarder.stats.stored == 5
        assert owners(tmp_path / "outbox.db") == [forwarder.outbox.owner] * 5
        stop_forwarder()
    # Released at exit: the next process that reaches the server sends them.
    assert owners(tmp_path / "outbox.db") == [None] * 5
    unreachable = [r for r in caplog.records if "unreachable (connection refused)" in r.message]
    assert len(unreachable) == 1 and str(tmp_path / "outbox.db") in unreachable[0].message


def test_an_unusable_outbox_stops_runs_only_when_persistence_is_required(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    url = "http://127.0.0.1:9/api"
    with temporary_settings(home=tmp_path, api_url=url, api_outbox_path=blocker / "outbox.db"):
        with pytest.raises(StorageError, match="outbox.db"):
            ensure_forwarder()
        with pytest.raises(StorageError):  # the same error again, without a new attempt
            ensure_forwarder()
    caplog.set_level(logging.WARNING, "headwater.client")
    with temporary_settings(
        home=tmp_path,
        api_url=url,
        api_outbox_path=blocker / "other.db",
        persistence_required=False,
    ):
        assert ensure_forwarder() is None
    assert any("events are not being kept" in record.message for record in caplog.records)
