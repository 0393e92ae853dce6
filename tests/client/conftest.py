"""Client test set-up: real headwater servers in subprocesses, client homes per test."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from client_helpers import ServerProcess  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server without credentials, shared by a module's tests."""
    running = ServerProcess(tmp_path_factory.mktemp("server")).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Make servers of this test's own (started or not); each is stopped after the test."""
    made: list[ServerProcess] = []

    def make(name: str = "server", *, start: bool = True, **options: Any) -> ServerProcess:
        server = ServerProcess(tmp_path / name, **options)
        made.append(server)
        return server.start() if start else server

    yield make
    for server in made:
        server.stop()
