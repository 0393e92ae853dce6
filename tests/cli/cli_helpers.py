"""Helpers for the CLI tests: small flows, output parsing, subprocess environments."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import Result

from headwater import flow, get_run_logger, task
from headwater.storage import ensure_persistence, stop_persistence

HEADWATER = Path(sys.executable).parent / "headwater"


@task
async def double(value: int) -> int:
    return value * 2


@flow(name="cli-etl")
async def etl(count: int) -> int:
    get_run_logger().info("processing %d items", count)
    values = await asyncio.gather(*(double(value) for value in range(count)))
    return sum(values)


@flow(name="cli-broken")
async def broken() -> None:
    get_run_logger().warning("the source looks unwell")
    raise ValueError("source is gone")


def flush_history() -> None:
    """Write buffered run logs now; a flow call already committed its events."""
    stop_persistence()
    ensure_persistence()


def json_lines(text: str) -> list[dict[str, Any]]:
    """Parse ``--output json``: one JSON object per non-empty line."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_one_line_error(result: Result, exit_code: int, *fragments: str) -> None:
    """The command failed with ``exit_code`` and exactly one ``Error:`` line on stderr."""
    assert result.exit_code == exit_code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: "), lines
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@dataclass
class History:
    """The flow run ids made by the ``history`` fixture."""

    tagged: str  # cli-etl(3), tagged "nightly", Completed
    plain: str  # cli-etl(2), Completed
    failed: str  # cli-broken, Failed


def subprocess_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a ``headwater`` subprocess using ``home``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HEADWATER_")}
    env.update(HEADWATER_HOME=str(home), HEADWATER_LOGGING_TO_CONSOLE="false", **extra)
    return env


Invoke = Callable[..., Result]
"""The ``invoke`` fixture's type: run the CLI in-process with arguments, get click's Result."""
