"""The client side of the server's websocket handshake, shared by ``/events/in`` and ``/out``.

The protocol is Prefect 3's (``prefect-3-semantics.md`` §3.6), so a headwater client and a
headwater server pair the same way Prefect's do:

1. connect with the subprotocol ``prefect``; credentials also go in the ``Authorization``
   header of the upgrade request (``Basic base64(HEADWATER_API_AUTH_STRING)``, else
   ``Bearer HEADWATER_API_KEY``), so that proxies in front of the server can check them;
2. send ``{"type": "auth", "token": <auth string or key or null>}`` as the first frame;
3. expect ``{"type": "auth_success"}``; a close with code 1008 means the server rejected
   the credentials.

Every failure leaves this module as an :class:`~headwater.exceptions.ApiError` that names
the URL and never the secret: websockets' and the OS's exceptions are translated here, at
the adapter boundary. Debug logging of websockets is silenced for these connections, since
it would print the ``Authorization`` header.

The reconnection policy (:func:`reconnect_delay`) is a pure function of the attempt number
and a random draw, so it is tested without sleeping.
"""

from __future__ import annotations

import base64
import logging
import random
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from headwater.exceptions import ApiAuthError, ApiUnavailableError

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

    from headwater.settings import Settings

__all__ = [
    "SUBPROTOCOL",
    "AUTH_FAILURE_CODE",
    "auth_headers",
    "auth_token",
    "close_quietly",
    "http_url",
    "open_websocket",
    "reconnect_delay",
    "websocket_url",
]

SUBPROTOCOL = "prefect"
AUTH_FAILURE_CODE = 1008
FIRST_RECONNECT_DELAY = 0.1
"""Seconds before the first reconnection attempt; each later attempt doubles it."""

_WS_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_HTTP_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


def _split(api_url: str) -> urllib.parse.SplitResult:
    split = urllib.parse.urlsplit(api_url)
    if split.scheme not in _WS_SCHEMES or not split.netloc:
        raise ApiUnavailableError(
            api_url, "HEADWATER_API_URL must be an http(s) URL such as http://127.0.0.1:4200/api"
        )
    return split


def websocket_url(api_url: str, path: str) -> str:
    """The websocket URL of ``path`` under the API URL (``http://h/api`` → ``ws://h/api/...``)."""
    split = _split(api_url)
    return urllib.parse.urlunsplit(
        (_WS_SCHEMES[split.scheme], split.netloc, split.path.rstrip("/") + path, "", "")
    )


def http_url(api_url: str, path: str = "") -> str:
    """The HTTP URL of ``path`` under the API URL."""
    split = _split(api_url)
    return urllib.parse.urlunsplit(
        (_HTTP_SCHEMES[split.scheme], split.netloc, split.path.rstrip("/") + path, "", "")
    )


def auth_headers(settings: Settings) -> dict[str, str]:
    """The ``Authorization`` header for these settings; the auth string wins over the key."""
    if settings.api_auth_string is not None:
        raw = settings.api_auth_string.get_secret_value().encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    if settings.api_key is not None:
        return {"Authorization": "Bearer " + settings.api_key.get_secret_value()}
    return {}


def auth_token(settings: Settings) -> str | None:
    """The token of the in-band auth frame: the auth string, else the API key, else None."""
    secret = settings.api_auth_string or settings.api_key
    return None if secret is None else secret.get_secret_value()


def reconnect_delay(
    attempt: int,
    longest: float,
    *,
    first: float = FIRST_RECONNECT_DELAY,
    draw: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before reconnection attempt ``attempt`` (0 for the first retry).

    Exponential backoff with "equal jitter": the ceiling doubles with each attempt up to
    ``longest``, and the wait is half the ceiling plus a random part of the other half, so
    many clients cut off by one server restart do not all come back in the same instant.
    """
    ceiling = min(longest, first * (2 ** min(attempt, 32)))
    return ceiling / 2 + draw() * ceiling / 2


class _QuietLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """websockets' logger for our connections, minus DEBUG: it would print the auth header."""

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


_ws_logger = _QuietLogger(logging.getLogger("websockets.client"), {})
_reply_decoder = msgspec.json.Decoder(dict[str, Any])


def _closed_cause(exc: BaseException) -> tuple[int | None, str]:
    received = getattr(exc, "rcvd", None)
    if received is None:
        return None, "the connection was closed"
    reason = f": {received.reason}" if received.reason else ""
    return received.code, f"closed with code {received.code}{reason}"


async def open_websocket(
    url: str, settings: Settings, *, limit: float | None = None
) -> ClientConnection:
    """Connect to a websocket endpoint of the server and authenticate.

    Args:
        url: the ``ws://`` or ``wss://`` URL (see :func:`websocket_url`).
        settings: where the credentials come from.
        limit: seconds for the whole handshake; ``settings.api_request_timeout`` by default.

    Returns:
        An open, authenticated connection; the caller closes it.

    Raises:
        ApiAuthError: the server rejected the credentials (close 1008, or HTTP 401/403).
        ApiUnavailableError: the server cannot be reached or does not speak the protocol.
    """
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

    limit = settings.api_request_timeout if limit is None else limit
    try:
        with anyio.fail_after(limit):
            connection = await connect(
                url,
                subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                additional_headers=auth_headers(settings),
                open_timeout=None,  # the enclosing fail_after bounds the whole handshake
                max_size=None,  # the server bounds what it sends; events may be 1.5 MB
                logger=_ws_logger,
            )
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status in (401, 403):
            raise ApiAuthError(url, f"credentials rejected (HTTP {status})") from None
        raise ApiUnavailableError(url, f"websocket upgrade refused (HTTP {status})") from None
    except TimeoutError:
        raise ApiUnavailableError(url, f"no answer within {limit:g} s") from None
    except OSError as exc:
        raise ApiUnavailableError(url, _os_reason(exc)) from None
    except WebSocketException as exc:
        raise ApiUnavailableError(url, f"websocket handshake failed ({exc})") from None
    if connection.subprotocol != SUBPROTOCOL:
        return connection  # a legacy server: no in-band authentication
    try:
        with anyio.fail_after(limit):
            await connection.send(
                msgspec.json.encode({"type": "auth", "token": auth_token(settings)}), text=True
            )
            reply = await connection.recv(decode=False)
    except ConnectionClosed as exc:
        await close_quietly(connection)
        code, cause = _closed_cause(exc)
        if code == AUTH_FAILURE_CODE:
            raise ApiAuthError(url, f"credentials rejected ({cause})") from None
        raise ApiUnavailableError(url, f"authentication failed ({cause})") from None
    except TimeoutError:
        await close_quietly(connection)
        raise ApiUnavailableError(url, f"no authentication reply within {limit:g} s") from None
    except BaseException:
        await close_quietly(connection)
        raise
    try:
        kind = _reply_decoder.decode(reply).get("type")
    except msgspec.DecodeError:
        kind = None
    if kind != "auth_success":
        await close_quietly(connection)
        raise ApiUnavailableError(url, f"unexpected authentication reply {bytes(reply)[:80]!r}")
    return connection


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return exc.strerror or str(exc) or type(exc).__name__


async def close_quietly(connection: ClientConnection, grace: float = 2.0) -> None:
    """Close ``connection`` (code 1000) within ``grace`` seconds, whatever state it is in."""
    with anyio.move_on_after(grace, shield=True):
        try:
            await connection.close()
        except Exception:
            pass  # already broken: nothing left to tell the server
