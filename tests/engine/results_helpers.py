"""Helpers for the results, caching and transaction tests: run a script in a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).parents[2]


def child_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["HEADWATER_HOME"] = str(home)
    env["HEADWATER_LOGGING_TO_CONSOLE"] = "false"
    env["HEADWATER_EVENTS_ENABLED"] = "false"  # no database: the children only share results
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def start_script(source: str, home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(source), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(home),
        text=True,
    )


def run_script(source: str, home: Path, *args: str) -> str:
    """Run ``source`` in a fresh interpreter with ``HEADWATER_HOME=home``; its stdout."""
    child = start_script(source, home, *args)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    return out.strip()
