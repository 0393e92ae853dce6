"""Fixtures for the bus and service-loop tests: a private bus per test, torn down cleanly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from headwater.events.bus import EventBus


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def bus() -> Iterator[EventBus]:
    """A bus of its own, so a test sees only its own subscribers; every one is closed after."""
    bus = EventBus()
    yield bus
    for buffer in bus._buffers:
        buffer.close()
