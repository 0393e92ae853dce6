"""The opening of both event websockets, exactly as Prefect's clients expect it.

1. The client asks for subprotocol ``prefect``. Without it: when the server requires
   credentials, the connection is accepted and closed with 1002 (protocol error); when it
   does not, it is accepted in *legacy mode*, with no auth message at all.
2. With it, the first client message must be ``{"type": "auth", "token": <str|null>}``.
   Anything else closes with 1008. When credentials are required, a missing token closes
   with 1008 "Auth required but no token provided", a wrong one with 1008 "Invalid token"
   (constant-time, see :mod:`headwater.server.auth`). Otherwise the server answers
   ``{"type": "auth_success"}``.

The ``Authorization`` header a client may also send on the upgrade request is for proxies
in between; the server decides on the in-band token alone.
"""

from __future__ import annotations

import anyio
import msgspec
from starlette.websockets import WebSocket, WebSocketDisconnect

from headwater.server.auth import Authenticator
from headwater.server.wire import AUTH_SUCCESS

__all__ = ["SUBPROTOCOL", "accept", "close_quietly", "receive_first"]

SUBPROTOCOL = "prefect"

HANDSHAKE_TIMEOUT = 30.0
"""Seconds a client has to send its auth (or filter) message before it is disconnected."""

WS_1002_PROTOCOL_ERROR = 1002
WS_1008_POLICY_VIOLATION = 1008


class _AuthMessage(msgspec.Struct):
    type: str
    token: str | None = None


async def receive_first(websocket: WebSocket) -> str | bytes | None:
    """The next client message's data, or None when the client left or took too long."""
    with anyio.move_on_after(HANDSHAKE_TIMEOUT):
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return None
        data: str | bytes | None = message.get("text")
        if data is None:
            data = message.get("bytes") or b""
        return data
    return None


async def accept(websocket: WebSocket, authenticator: Authenticator) -> bool:
    """Accept the connection and run the handshake.

    Returns:
        True when the connection may go on; False when it was closed (or the client left).
    """
    if SUBPROTOCOL not in websocket.scope.get("subprotocols", ()):
        await websocket.accept()
        if authenticator.enabled:
            await close_quietly(websocket, WS_1002_PROTOCOL_ERROR, "Subprotocol 'prefect' required")
            return False
        return True
    await websocket.accept(subprotocol=SUBPROTOCOL)
    data = await receive_first(websocket)
    if data is None:
        await close_quietly(websocket, WS_1008_POLICY_VIOLATION, "Expected 'auth' message")
        return False
    try:
        message = msgspec.json.decode(data, type=_AuthMessage)
    except msgspec.DecodeError:
        message = None
    if message is None or message.type != "auth":
        await close_quietly(websocket, WS_1008_POLICY_VIOLATION, "Expected 'auth' message")
        return False
    if authenticator.enabled:
        if not message.token:
            await close_quietly(
                websocket, WS_1008_POLICY_VIOLATION, "Auth required but no token provided"
            )
            return False
        if not authenticator.check_token(message.token):
            await close_quietly(websocket, WS_1008_POLICY_VIOLATION, "Invalid token")
            return False
    try:
        await websocket.send_text(AUTH_SUCCESS)
    except WebSocketDisconnect:
        return False
    return True


async def close_quietly(websocket: WebSocket, code: int, reason: str) -> None:
    """Close with ``code`` and ``reason``, unless the client has already gone."""
    try:
        await websocket.close(code, reason)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client is already gone
