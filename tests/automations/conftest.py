from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402
from automation_helpers import Receiver  # noqa: E402

from headwater.settings import temporary_settings  # noqa: E402


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A fresh database; short proactive windows allowed; reactor and persistence stopped after."""
    from headwater.automations.service import stop_reactor
    from headwater.storage import stop_persistence

    with temporary_settings(
        home=tmp_path,
        automations_minimum_proactive_within=0.1,
        automations_resync_interval=0.5,
    ):
        try:
            yield tmp_path
        finally:
            stop_reactor()
            stop_persistence()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.close()
