"""Test-wide set-up: an isolated HEADWATER_HOME, and helpers to watch the bus."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

# Settings are read once per process: point them at a scratch home before headwater loads.
_home = tempfile.mkdtemp(prefix="headwater-tests-")
os.environ["HEADWATER_HOME"] = _home
# registered first, so it runs last: after persistence has flushed and closed the database
atexit.register(shutil.rmtree, _home, ignore_errors=True)
os.environ.setdefault("HEADWATER_LOGGING_TO_CONSOLE", "false")

from support import EventLog  # noqa: E402

from headwater.events import get_bus  # noqa: E402


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


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
