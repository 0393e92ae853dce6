"""Helpers for the client tests: a real headwater server in a subprocess, and client processes.

The server runs as ``headwater server start`` in its own process, so a test can stop and
restart it (SIGTERM: uvicorn closes the websockets with 1012 and commits every event) while
a flow in another process keeps running.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).parent
HEADWATER = Path(sys.executable).parent / "headwater"
FLOWS = HERE / "client_flows.py"
TIMEOUT = 30.0
AUTH_STRING = "flow-user:right-pass-5521"

__all__ = [
    "AUTH_STRING",
    "FLOWS",
    "HEADWATER",
    "TIMEOUT",
    "ServerProcess",
    "client_env",
    "free_port",
    "finish",
    "next_report",
    "outbox_rows",
    "run_flow",
    "server_event_ids",
    "wait_until",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(home: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("HEADWATER_")}
    env.update(HEADWATER_HOME=str(home), HEADWATER_LOGGING_TO_CONSOLE="false", **extra)
    return env


def client_env(home: Path, api_url: str, **extra: str) -> dict[str, str]:
    """A client process: forwards to ``api_url``, reconnects quickly (tests wait less)."""
    return base_env(
        home,
        HEADWATER_API_URL=api_url,
        HEADWATER_API_RECONNECT_MAX_DELAY="0.3",
        HEADWATER_API_REQUEST_TIMEOUT="10",
        **extra,
    )


def wait_until(predicate: Any, timeout: float = TIMEOUT, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {predicate}")
        time.sleep(interval)


class ServerProcess:
    """``headwater server start`` on a loopback port, with its own HEADWATER_HOME."""

    def __init__(
        self, home: Path, port: int | None = None, auth: str | None = None, **env: str
    ) -> None:
        self.home = home
        self.port = port or free_port()
        self.auth = auth
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.log = home / "server.log"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self) -> ServerProcess:
        extra = {"HEADWATER_SERVER_API_AUTH_STRING": self.auth} if self.auth else {}
        extra.update(self.env)
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(HEADWATER), "server", "start", "--port", str(self.port), "--no-access-log"],
                env=base_env(self.home, **extra),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._ready)
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the server exited: {self.log.read_text()}")
        try:
            return httpx.get(f"{self.api_url}/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def kill(self) -> None:
        """kill -9: no shutdown, no flush (what a crash or an OOM kill does)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json=body)

    def request(self, method: str, path: str, **options: Any) -> Any:
        auth = tuple(self.auth.split(":", 1)) if self.auth else None
        response = httpx.request(method, self.api_url + path, auth=auth, timeout=10, **options)
        response.raise_for_status()
        return response.json() if response.content else None

    def task_runs(self, flow_run_id: str) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self.post(
            "/task_runs/filter", {"flow_run_id": flow_run_id, "limit": 1000}
        )
        return runs

    def finished_run(self, flow_run_id: str) -> dict[str, Any]:
        """The flow run once the server has committed its final state (it writes in batches
        shortly after accepting events)."""

        def final() -> dict[str, Any] | None:
            found = self.post("/flow_runs/filter", {"limit": 1000})
            if not any(run["id"] == flow_run_id for run in found):
                return None
            run: dict[str, Any] = self.get(f"/flow_runs/{flow_run_id}")
            return run if run["state"]["type"] in ("COMPLETED", "FAILED") else None

        run: dict[str, Any] = wait_until(final)
        return run


def server_event_ids(server: ServerProcess) -> list[str]:
    """Every event id the server stored, in the order it stored them (its arrival order)."""
    with sqlite3.connect(server.home / "headwater.db") as db:
        return [row[0] for row in db.execute("SELECT id FROM events ORDER BY rowid")]


def outbox_rows(home: Path) -> list[tuple[str | None, bytes]]:
    path = home / "outbox.db"
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        return list(db.execute("SELECT owner, data FROM outbox ORDER BY seq"))


def run_flow(
    env: dict[str, str], mode: str = "once", count: int = 3, pause: float = 0.0
) -> subprocess.Popen[str]:
    """Start ``client_flows.py`` in a subprocess (read its reports with ``reports``)."""
    return subprocess.Popen(
        [sys.executable, str(FLOWS), mode, str(count), str(pause)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(
    process: subprocess.Popen[str], timeout: float = TIMEOUT
) -> tuple[list[dict[str, Any]], str]:
    """Wait for a flow process to end (with status 0): its JSON reports, and its stderr."""
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")], stderr


def next_report(process: subprocess.Popen[str]) -> dict[str, Any]:
    """The flow process's next JSON report, while it keeps running."""
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("{"), (line, process.stderr.read() if process.stderr else "")
    report: dict[str, Any] = json.loads(line)
    return report
