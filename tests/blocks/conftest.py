"""Fixtures for block tests: a private HEADWATER_HOME (database and key file) per test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from headwater.events import get_bus  # noqa: E402
from headwater.settings import temporary_settings  # noqa: E402


@pytest.fixture(autouse=True)
def home(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "home"
    directory.mkdir()
    with temporary_settings(home=directory, database_url=None):
        yield directory
    get_bus().flush(timeout=10)
