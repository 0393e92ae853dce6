from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import pytest  # noqa: E402

from headwater.settings import temporary_settings  # noqa: E402


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A fresh database for this test; services stopped after (their state is per home)."""
    from headwater.automations.service import stop_reactor
    from headwater.runner.service import stop_runner
    from headwater.storage import stop_persistence

    with temporary_settings(home=tmp_path, database_url=None, runner_cancel_grace=3.0):
        try:
            yield tmp_path
        finally:
            stop_runner()
            stop_reactor()
            stop_persistence()
