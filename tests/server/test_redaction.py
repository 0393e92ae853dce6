"""A server at --log-level debug logs no credential: not headers, not frames, not its own."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import msgspec
import websockets

from headwater.server.redaction import RedactSecrets
from headwater.settings import SecretValue, get_settings

AUTH = "admin:topsecret-password"
KEY = "key-0123456789abcdef"


def test_the_filter_masks_headers_tokens_and_the_servers_secrets() -> None:
    settings = msgspec.structs.replace(
        get_settings(),
        server_api_auth_string=SecretValue(AUTH),
        server_api_keys=SecretValue(f"{KEY},other-key"),
    )
    redact = RedactSecrets(settings=settings).redact
    basic = base64.b64encode(AUTH.encode()).decode()
    assert redact(f"< authorization: Basic {basic}") == "< authorization: ***"
    assert redact("< Cookie: session=abc") == "< Cookie: ***"
    assert (
        redact('< TEXT \'{"type":"auth","token":"zzz"}\'')
        == '< TEXT \'{"type":"auth","token":"***"}\''
    )
    assert redact(f"seen {KEY} and topsecret-password and {basic}") == "seen *** and *** and ***"
    assert redact("nothing secret here") == "nothing secret here"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_debug_server_log_holds_no_credential(tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "server.log"
    env = dict(
        os.environ,
        HEADWATER_HOME=str(tmp_path),
        HEADWATER_SERVER_API_AUTH_STRING=AUTH,
        HEADWATER_SERVER_API_KEYS=KEY,
    )
    with log.open("wb") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "headwater",
                "server",
                "start",
                "--port",
                str(port),
                "--log-level",
                "debug",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and server.poll() is None
            time.sleep(0.05)
        user, password = AUTH.split(":")
        assert httpx.post(f"{base}/api/flow_runs/filter", json={}, auth=(user, password)).is_success

        async def connect() -> str:
            async with websockets.connect(
                f"ws://127.0.0.1:{port}/api/events/in",
                subprotocols=["prefect"],  # type: ignore[list-item]
                additional_headers={"Authorization": f"Bearer {KEY}", "Cookie": "sid=c00kie-value"},
            ) as connection:
                await connection.send(f'{{"type": "auth", "token": "{KEY}"}}')
                return str(await connection.recv())

        assert "auth_success" in asyncio.run(connect())
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    text = log.read_text()
    assert "DEBUG" in text and "authorization: ***" in text.lower()  # debug was on
    basic = base64.b64encode(AUTH.encode()).decode()
    for secret in (AUTH, "topsecret-password", basic, KEY, "c00kie-value"):
        assert secret not in text
