"""The websocket handshake and auth helpers, against a real server, and the backoff policy."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from client_helpers import AUTH_STRING, ServerProcess

from headwater.client.websocket import (
    auth_headers,
    auth_token,
    http_url,
    open_websocket,
    reconnect_delay,
    websocket_url,
)
from headwater.exceptions import ApiAuthError, ApiUnavailableError
from headwater.settings import SecretValue, get_settings, temporary_settings


def test_urls_follow_the_api_url() -> None:
    assert websocket_url("http://h:4200/api", "/events/in") == "ws://h:4200/api/events/in"
    assert websocket_url("https://h/api/", "/events/out") == "wss://h/api/events/out"
    assert http_url("https://h/api/", "/health") == "https://h/api/health"
    with pytest.raises(ApiUnavailableError, match="must be an http"):
        websocket_url("h:4200/api", "/events/in")


def test_auth_string_wins_over_the_api_key_and_is_never_shown() -> None:
    key = SecretValue("key-123")
    auth = SecretValue("user:pass-456")
    with temporary_settings(api_key=key, api_auth_string=auth) as settings:
        encoded = base64.b64encode(b"user:pass-456").decode()
        assert auth_headers(settings) == {"Authorization": f"Basic {encoded}"}
        assert auth_token(settings) == "user:pass-456"
        assert "pass-456" not in repr(settings)
    with temporary_settings(api_key=key, api_auth_string=None) as settings:
        assert auth_headers(settings) == {"Authorization": "Bearer key-123"}
        assert auth_token(settings) == "key-123"
    with temporary_settings(api_key=None, api_auth_string=None) as settings:
        assert auth_headers(settings) == {} and auth_token(settings) is None


def test_reconnect_delay_doubles_up_to_the_longest_with_jitter() -> None:
    low = [reconnect_delay(attempt, 2.0, draw=lambda: 0.0) for attempt in range(8)]
    high = [reconnect_delay(attempt, 2.0, draw=lambda: 1.0) for attempt in range(8)]
    assert low == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert high == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0]
    assert reconnect_delay(10_000, 5.0, draw=lambda: 1.0) == 5.0


@pytest.mark.anyio
async def test_handshake_succeeds_with_the_right_token(
    start_server: Callable[..., ServerProcess],
) -> None:
    secured = start_server(auth=AUTH_STRING)
    url = websocket_url(secured.api_url, "/events/in")
    with temporary_settings(api_auth_string=SecretValue(AUTH_STRING)) as settings:
        connection = await open_websocket(url, settings)
        assert connection.subprotocol == "prefect"
        await connection.close()
    wrong = temporary_settings(api_auth_string=SecretValue("flow-user:nope"))
    with wrong as settings, pytest.raises(ApiAuthError) as caught:
        await open_websocket(url, settings)
    assert "1008" in str(caught.value) and url in str(caught.value)
    assert "nope" not in str(caught.value)
    missing = pytest.raises(ApiAuthError, match="no token provided")
    with temporary_settings(api_auth_string=None) as settings, missing:
        await open_websocket(url, settings)


@pytest.mark.anyio
async def test_unreachable_server_is_an_unavailable_error() -> None:
    with pytest.raises(ApiUnavailableError, match="connection refused"):
        await open_websocket("ws://127.0.0.1:9/api/events/in", get_settings())
