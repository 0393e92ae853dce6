"""Fixtures for notification tests: a private HEADWATER_HOME per test, receivers, fake DNS."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from notification_helpers import Receiver  # noqa: E402

from headwater.events import get_bus  # noqa: E402
from headwater.settings import temporary_settings  # noqa: E402


@pytest.fixture(autouse=True)
def home(tmp_path: Path) -> Iterator[Path]:
    """A fresh HEADWATER_HOME (database and key file) and fast notification retries."""
    directory = tmp_path / "home"
    directory.mkdir()
    with temporary_settings(home=directory, database_url=None, notifications_retry_delay=0.01):
        yield directory
    get_bus().flush(timeout=10)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, Any], None]:
    """Point host names at addresses of our choosing: ``fake_dns(host, (ip, port))``, or a
    callable returning the address, called on each lookup."""
    table: dict[str, Any] = {}
    original = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in table:
            entry = table[host]
            ip, real_port = entry() if callable(entry) else entry
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (ip, real_port or port))]
        return original(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    def add(host: str, address: Any) -> None:
        table[host] = address

    return add
