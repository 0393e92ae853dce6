"""Prefect's websocket handshake on /api/events/in and /api/events/out: every close code."""

from __future__ import annotations

import json

import pytest
from server_helpers import AUTH_STRING, TIMEOUT, RunningServer, open_socket
from websockets.exceptions import ConnectionClosed

PATHS = ["/api/events/in", "/api/events/out"]

pytestmark = pytest.mark.anyio


async def closed_with(websocket: object, message: object | None) -> tuple[int, str]:
    """Send ``message`` (if any), then expect the server to close; return (code, reason)."""
    import anyio

    async with websocket:  # type: ignore[attr-defined]
        if message is not None:
            await websocket.send(json.dumps(message))  # type: ignore[attr-defined]
        with anyio.fail_after(TIMEOUT):
            with pytest.raises(ConnectionClosed) as caught:
                while True:
                    await websocket.recv()  # type: ignore[attr-defined]
    assert caught.value.rcvd is not None
    return caught.value.rcvd.code, caught.value.rcvd.reason


@pytest.mark.parametrize("path", PATHS)
async def test_no_subprotocol_with_auth_configured_closes_1002(
    secured: RunningServer, path: str
) -> None:
    websocket = await open_socket(secured, path, subprotocol=False, handshake=False)
    code, _ = await closed_with(websocket, None)
    assert code == 1002


@pytest.mark.parametrize("path", PATHS)
async def test_missing_token_closes_1008(secured: RunningServer, path: str) -> None:
    websocket = await open_socket(secured, path, handshake=False)
    assert await closed_with(websocket, {"type": "auth", "token": None}) == (
        1008,
        "Auth required but no token provided",
    )


@pytest.mark.parametrize("path", PATHS)
async def test_wrong_token_closes_1008(secured: RunningServer, path: str) -> None:
    websocket = await open_socket(secured, path, handshake=False)
    assert await closed_with(websocket, {"type": "auth", "token": "admin:guess"}) == (
        1008,
        "Invalid token",
    )


@pytest.mark.parametrize("message", [{"type": "filter"}, "auth", [1, 2]])
async def test_anything_but_an_auth_message_closes_1008(
    secured: RunningServer, message: object
) -> None:
    websocket = await open_socket(secured, "/api/events/in", handshake=False)
    code, reason = await closed_with(websocket, message)
    assert (code, reason) == (1008, "Expected 'auth' message")


@pytest.mark.parametrize("token", [AUTH_STRING, "key-one"])
@pytest.mark.parametrize("path", PATHS)
async def test_auth_string_or_api_key_is_accepted(
    secured: RunningServer, path: str, token: str
) -> None:
    websocket = await open_socket(secured, path, token=token)  # asserts auth_success
    await websocket.close()


@pytest.mark.parametrize("path", PATHS)
async def test_without_auth_any_token_is_accepted(server: RunningServer, path: str) -> None:
    websocket = await open_socket(server, path, token=None)
    await websocket.close()
    websocket = await open_socket(server, path, token="anything")
    await websocket.close()


async def test_legacy_mode_without_subprotocol_and_without_auth(server: RunningServer) -> None:
    # No subprotocol, no auth configured: no handshake at all, straight to the filter.
    async with await open_socket(server, "/api/events/out", subprotocol=False) as websocket:
        assert websocket.subprotocol is None
        await websocket.send(json.dumps({"type": "filter", "filter": {}, "backfill": False}))
        await websocket.ping()


async def test_the_negotiated_subprotocol_is_prefect(server: RunningServer) -> None:
    async with await open_socket(server, "/api/events/in") as websocket:
        assert websocket.subprotocol == "prefect"
