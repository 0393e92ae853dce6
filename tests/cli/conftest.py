"""CLI test set-up: a fresh HEADWATER_HOME per test, a CliRunner, and a small run history.

Settings are read once per process, so in-process tests switch homes with
``temporary_settings``; subprocess tests pass HEADWATER_HOME in the environment instead.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

# The helpers are imported by the tests too.
HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from cli_helpers import History, Invoke, broken, etl, flush_history  # noqa: E402

from headwater import tags  # noqa: E402
from headwater.cli.app import cli  # noqa: E402
from headwater.settings import temporary_settings  # noqa: E402
from headwater.storage import ensure_persistence, get_persistence, stop_persistence  # noqa: E402


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A fresh HEADWATER_HOME for this test, with run history being written to it."""
    was_running = get_persistence() is not None
    with temporary_settings(home=tmp_path, database_url=None):
        ensure_persistence()
        try:
            yield tmp_path
        finally:
            stop_persistence()
    if was_running:  # give later tests the session's persistence back
        ensure_persistence()


@pytest.fixture
def invoke() -> Invoke:
    """Run the ``headwater`` group in-process: ``invoke("flow-run", "ls")``."""
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return run


@pytest.fixture
def history(home: Path) -> History:
    """Three real flow runs stored in this test's home (logs written too)."""

    async def make() -> History:
        with tags("nightly"):
            tagged = await etl(3, return_state=True)
        plain = await etl(2, return_state=True)
        failed = await broken(return_state=True)
        ids = [state.state_details.flow_run_id for state in (tagged, plain, failed)]
        return History(*(str(run_id) for run_id in ids))

    made = asyncio.run(make())
    flush_history()
    return made
