"""Test-wide set-up: an isolated HEADWATER_HOME, and helpers to watch the bus."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

# Settings are read once per process: point them at a scratch home before headwater loads.
_home = tempfile.mkdtemp(prefix="headwater-tests-")
os.environ["HEADWATER_HOME"] = _home
os.environ.setdefault("HEADWATER_LOGGING_TO_CONSOLE", "false")

from headwater.events import Event, get_bus  # noqa: E402


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class EventLog(list[Event]):
    """Every event published while the fixture is active, in order."""

    def names(self, prefix: str = "") -> list[str]:
        return [event.event for event in self if event.event.startswith(prefix)]

    def for_resource(self, resource_id: str) -> list[Event]:
        return [event for event in self if event.resource_id == resource_id]

    def state_names(self, run_id: Any, kind: str = "flow-run") -> list[str]:
        """The state names a run went through, from its own events."""
        resource_id = f"headwater.{kind}.{run_id}"
        return [event.event.rsplit(".", 1)[1] for event in self.for_resource(resource_id)]


@pytest.fixture
def events() -> Iterator[EventLog]:
    """Collect events through a real lossless consumer on the service loop.

    Flow calls flush lossless consumers before returning, so after a flow returns the
    log holds every event of that run.
    """
    log = EventLog()
    bus = get_bus()
    consumer = bus.add_consumer(log.append, lossless=True, buffer_size=100_000, name="test-log")
    try:
        yield log
    finally:
        bus.flush(timeout=10)
        consumer.close()


def assert_transitions(log: EventLog, run_id: Any, expected: list[str], kind: str = "flow-run"):
    """Assert a run went through exactly ``expected`` state names, in order."""
    seen = log.state_names(run_id, kind)
    assert seen == expected, f"{kind} {run_id}: expected {expected}, saw {seen}"
