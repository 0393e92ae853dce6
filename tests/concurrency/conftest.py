"""Concurrency test set-up: a fresh HEADWATER_HOME (so a fresh database of limits) per test.

Settings are read once per process, so in-process tests switch homes with
``temporary_settings``; the subprocess tests pass HEADWATER_HOME in the environment.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from headwater.concurrency.task_slots import invalidate_tag_cache  # noqa: E402
from headwater.settings import temporary_settings  # noqa: E402


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "home"
    with temporary_settings(home=directory, database_url=None):
        invalidate_tag_cache()
        yield directory
    invalidate_tag_cache()
