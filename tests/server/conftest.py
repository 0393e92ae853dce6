"""Server test set-up: a database of their own, and real servers on free loopback ports."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from server_helpers import API_KEYS, AUTH_STRING, RunningServer, auth_settings  # noqa: E402

from headwater.settings import temporary_settings  # noqa: E402
from headwater.storage import ensure_persistence, get_persistence, stop_persistence  # noqa: E402


@pytest.fixture(scope="module")
def server_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A HEADWATER_HOME for this module's servers (their persistence writes there)."""
    home = tmp_path_factory.mktemp("server-home")
    if get_persistence() is not None:
        stop_persistence()
    with temporary_settings(home=home, database_url=None):
        ensure_persistence()
        try:
            yield home
        finally:
            stop_persistence()


@pytest.fixture(scope="module")
def server(server_home: Path) -> Iterator[RunningServer]:
    """One server without credentials, shared by a module's tests."""
    running = RunningServer().start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def secured(server_home: Path) -> Iterator[RunningServer]:
    """One server requiring credentials (AUTH_STRING, or a Bearer key of API_KEYS)."""
    running = RunningServer(settings=auth_settings(AUTH_STRING, API_KEYS)).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def start_server(server_home: Path) -> Iterator[Callable[..., RunningServer]]:
    """Start servers with particular settings or options; each is stopped after the test."""
    started: list[RunningServer] = []

    def start(**options: Any) -> RunningServer:
        running = RunningServer(**options).start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()
