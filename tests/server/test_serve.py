"""``headwater server start`` in a real process: persistence, clean stop on signals, quiet logs."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from headwater.events import Event

AUTH_STRING = "operator:hunter2-very-secret"
KEY = "k3y-that-must-not-leak"
TIMEOUT = 30.0


class ServerProcess:
    def __init__(self, home: Path) -> None:
        env = dict(
            os.environ,
            HEADWATER_HOME=str(home),
            HEADWATER_SERVER_API_AUTH_STRING=AUTH_STRING,
            HEADWATER_SERVER_API_KEYS=KEY,
        )
        env.pop("HEADWATER_DATABASE_URL", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "headwater", "server", "start", "--port", "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = self._wait_for_port()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            for line in list(self.lines):
                found = re.search(r"running on http://127\.0\.0\.1:(\d+)", line)
                if found:
                    return int(found.group(1))
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError("the server did not start:\n" + "".join(self.lines))

    def stop(self, signum: int) -> int:
        self.process.send_signal(signum)
        code = self.process.wait(TIMEOUT)
        self._reader.join(TIMEOUT)
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path)
    try:
        yield process
    finally:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait(TIMEOUT)
        if process.process.stdout is not None:
            process.process.stdout.close()


def send_events(port: int, count: int) -> None:
    with connect(f"ws://127.0.0.1:{port}/api/events/in", subprotocols=["prefect"]) as websocket:  # type: ignore[list-item]
        websocket.send(json.dumps({"type": "auth", "token": KEY}))
        assert json.loads(websocket.recv(TIMEOUT)) == {"type": "auth_success"}
        for n in range(count):
            event = Event(event="proc.sent", resource={"headwater.resource.id": "proc"})
            event.payload["n"] = n
            websocket.send(msgspec.json.encode(event).decode())
        websocket.ping().wait(TIMEOUT)  # every event is on the server's bus


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_by_signal_commits_everything_and_exits_0(
    running: ServerProcess, tmp_path: Path, signum: int
) -> None:
    send_events(running.port, 3000)
    assert running.stop(signum) == 0, running.output
    with sqlite3.connect(tmp_path / "headwater.db") as database:
        (stored,) = database.execute(
            "SELECT count(*) FROM events WHERE event = 'proc.sent'"
        ).fetchone()
    assert stored == 3000


def test_credentials_never_reach_the_log(running: ServerProcess) -> None:
    url = f"http://127.0.0.1:{running.port}"
    assert httpx.get(f"{url}/api/ready").json() == {"ready": True, "observers": 0}
    basic = base64.b64encode(AUTH_STRING.encode()).decode()
    assert httpx.get(f"{url}/api/webhooks", headers={"Authorization": f"Basic {basic}"}).is_success
    assert httpx.get(f"{url}/api/webhooks", headers={"Authorization": f"Bearer {KEY}"}).is_success
    assert httpx.get(f"{url}/api/webhooks", auth=("operator", "wrong-guess")).status_code == 401
    send_events(running.port, 1)
    assert running.stop(signal.SIGTERM) == 0
    output = running.output
    assert '"GET /api/webhooks HTTP/1.1" 200' in output  # the access log is on
    for secret in (AUTH_STRING, "hunter2", basic, KEY, "wrong-guess"):
        assert secret not in output


def test_stopping_closes_observers_with_1012(running: ServerProcess) -> None:
    url = f"ws://127.0.0.1:{running.port}/api/events/out"
    with connect(url, subprotocols=["prefect"]) as websocket:  # type: ignore[list-item]
        websocket.send(json.dumps({"type": "auth", "token": AUTH_STRING}))
        assert json.loads(websocket.recv(TIMEOUT)) == {"type": "auth_success"}
        websocket.send(json.dumps({"type": "filter", "filter": {}, "backfill": False}))
        websocket.ping().wait(TIMEOUT)  # subscribed
        running.process.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as caught:
            websocket.recv(TIMEOUT)
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 1012
    assert running.process.wait(TIMEOUT) == 0
