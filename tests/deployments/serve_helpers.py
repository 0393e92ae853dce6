"""Serve processes for the end-to-end tests: real subprocesses on a real database file."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


def environment(home: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("HEADWATER_API_URL", None)
    env.update(
        HEADWATER_HOME=str(home),
        HEADWATER_LOGGING_TO_CONSOLE="false",
        HEADWATER_RUNNER_CANCEL_GRACE="3",
        SERVED_MARKER_DIR=str(home / "markers"),
        PYTHONPATH=os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]),
    )
    env.update(extra)
    (home / "markers").mkdir(parents=True, exist_ok=True)
    return env


class ServeProcess:
    """``python serve_script.py`` with the given body after the imports."""

    def __init__(self, home: Path, body: str, **env: str) -> None:
        self.home = home
        script = home / f"serve_{time.time_ns()}.py"
        script.write_text(
            "from served_flows import greet, sleepy, broken, parent_calls_child\n"
            "from headwater import serve\n" + textwrap.dedent(body)
        )
        self.process = subprocess.Popen(
            [sys.executable, str(script)],
            env=environment(home, **env),
            cwd=home,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait_ready(self, deployments: int = 1, timeout: float = 30.0) -> None:
        wait_until(
            lambda: (
                len(query(self.home, "SELECT id FROM deployments WHERE paused = 0")) >= deployments
            ),
            timeout,
            f"{deployments} deployment(s) served",
        )

    def stop(self, timeout: float = 30.0) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            output, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
            raise AssertionError(f"serve did not stop within {timeout} s:\n{output}") from None
        return output

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.poll() is None:
            self.stop()


def query(home: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    path = home / "headwater.db"
    if not path.exists():
        return []
    connection = sqlite3.connect(path, timeout=30)
    try:
        return connection.execute(sql, args).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        connection.close()


def wait_until(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def headwater(home: Path, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "headwater", *args],
        env=environment(home),
        cwd=home,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_state(home: Path, run_id: str) -> tuple[str, str, str | None]:
    rows = query(
        home, "SELECT state_type, state_name, state_message FROM flow_runs WHERE id = ?", run_id
    )
    return rows[0] if rows else ("", "", None)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return True
