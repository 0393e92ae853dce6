"""Helpers for the server tests: a real uvicorn server in a thread, and websocket clients."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import anyio
import msgspec
import uvicorn
from websockets.asyncio.client import ClientConnection, connect

from headwater.events import Event
from headwater.server.serve import build_config, make_server
from headwater.server.state import ServerState
from headwater.settings import SecretValue, Settings, get_settings

__all__ = [
    "API_KEYS",
    "AUTH_STRING",
    "TIMEOUT",
    "RunningServer",
    "auth_settings",
    "eventually",
    "make_event",
    "open_socket",
    "unique",
    "wait_until",
]

TIMEOUT = 20.0
AUTH_STRING = "admin:s3cret-pass"
API_KEYS = "key-one,key-two"


class RunningServer:
    """A headwater server on a free loopback port, served by uvicorn in a thread."""

    def __init__(self, settings: Settings | None = None, **app_options: Any) -> None:
        # The module's fixture runs persistence; several servers may share it.
        app_options.setdefault("manage_persistence", False)
        config = build_config(
            "127.0.0.1",
            0,
            settings=settings,
            log_level="warning",
            access_log=False,
            **app_options,
        )
        self.config: uvicorn.Config = config
        self.server = make_server(config)
        self.thread = threading.Thread(target=self.server.run, name="test-server", daemon=True)
        self.port = 0

    def start(self) -> RunningServer:
        self.thread.start()
        deadline = time.monotonic() + TIMEOUT
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "the test server did not stop"

    @property
    def state(self) -> ServerState:
        state: ServerState = self.config.loaded_app.app.state.headwater  # type: ignore[union-attr]
        return state

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


def auth_settings(auth_string: str | None = None, api_keys: str | None = None) -> Settings:
    """The current settings with the server's credentials replaced."""
    return msgspec.structs.replace(
        get_settings(),
        server_api_auth_string=None if auth_string is None else SecretValue(auth_string),
        server_api_keys=None if api_keys is None else SecretValue(api_keys),
    )


async def open_socket(
    server: RunningServer,
    path: str,
    *,
    token: str | None = None,
    handshake: bool = True,
    subprotocol: bool = True,
) -> ClientConnection:
    """Connect to ``path``; with ``handshake``, send the auth message and expect success."""
    websocket = await connect(
        server.ws_url(path),
        subprotocols=["prefect"] if subprotocol else None,  # type: ignore[list-item]
        open_timeout=TIMEOUT,
        max_size=None,
    )
    if handshake and subprotocol:
        await websocket.send(json.dumps({"type": "auth", "token": token}))
        reply = json.loads(await websocket.recv())
        assert reply == {"type": "auth_success"}, reply
    return websocket


def make_event(resource_id: str, name: str = "test.happened", **payload: Any) -> Event:
    return Event(event=name, resource={"headwater.resource.id": resource_id}, payload=payload)


def unique(prefix: str = "test") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:12]}"


async def eventually(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Poll ``predicate`` without blocking the test's event loop; fail after ``timeout`` s."""
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Poll ``predicate`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.01)
