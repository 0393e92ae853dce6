"""Who may use the server: Prefect's basic auth string, plus optional Bearer API keys.

With ``HEADWATER_SERVER_API_AUTH_STRING`` (``user:password``) set, every HTTP request except
``GET /api/health`` and ``GET /api/ready`` must carry ``Authorization: Basic
base64(auth_string)``; with ``HEADWATER_SERVER_API_KEYS`` (comma-separated) set,
``Authorization: Bearer <key>`` is accepted too. The websockets authenticate in-band (see
:mod:`headwater.server.handshake`) with the auth string or a key as the token. Inbound
webhooks (``/hooks/<slug>``) are public unless the webhook says ``require_auth``.

Comparisons are constant-time: both sides are hashed (so neither the length nor a common
prefix of the secret shows in the timing) and the digests compared with
:func:`hmac.compare_digest`. A failure is ``401 {"exception_message": "Unauthorized"}`` and
nothing else: no hint of what was wrong. Secrets are kept as digests only and never appear
in a repr, a log line or an error message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from headwater.settings import SecretValue, Settings

__all__ = ["Authenticator", "AuthMiddleware", "unauthorized"]

OPEN_PATHS = frozenset({"/api/health", "/api/ready"})
"""Paths anyone may GET: probes must work without credentials, as in Prefect."""

HOOKS_PREFIX = "/hooks/"


def _digest(value: str | bytes) -> bytes:
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogatepass")
    return hashlib.sha256(value).digest()


class Authenticator:
    """Checks credentials against the configured auth string and API keys.

    Build it with :meth:`from_settings`. When neither is configured, ``enabled`` is False and
    everything is allowed (the server binds to loopback by default).
    """

    __slots__ = ("_auth_string", "_keys")

    def __init__(self, auth_string: str | None = None, api_keys: tuple[str, ...] = ()) -> None:
        self._auth_string = None if not auth_string else _digest(auth_string)
        self._keys = tuple(_digest(key) for key in api_keys if key)

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        return cls(_reveal(settings.server_api_auth_string), parse_keys(settings.server_api_keys))

    @property
    def enabled(self) -> bool:
        """Whether any credential is configured (and so required)."""
        return self._auth_string is not None or bool(self._keys)

    def check_token(self, token: str) -> bool:
        """Whether ``token`` (the in-band websocket token) is the auth string or a key."""
        candidate = _digest(token)
        ok = False
        if self._auth_string is not None:
            ok |= hmac.compare_digest(candidate, self._auth_string)
        # Every key is compared, matched or not, so the timing does not say which matched.
        for key in self._keys:
            ok |= hmac.compare_digest(candidate, key)
        return ok

    def check_header(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value carries a valid credential."""
        if not authorization:
            return False
        scheme, _, credentials = authorization.strip().partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        if scheme == "basic" and self._auth_string is not None:
            try:
                decoded = base64.b64decode(credentials, validate=True)
            except (binascii.Error, ValueError):
                return False
            return hmac.compare_digest(_digest(decoded), self._auth_string)
        if scheme == "bearer" and self._keys:
            candidate = _digest(credentials)
            ok = False
            for key in self._keys:
                ok |= hmac.compare_digest(candidate, key)
            return ok
        return False

    def allows(self, headers: Headers) -> bool:
        """Whether a request with ``headers`` may proceed (always, when auth is off)."""
        return not self.enabled or self.check_header(headers.get("authorization"))

    def __repr__(self) -> str:
        return f"<Authenticator enabled={self.enabled}>"


def _reveal(secret: SecretValue | None) -> str | None:
    return None if secret is None else secret.get_secret_value()


def parse_keys(secret: SecretValue | None) -> tuple[str, ...]:
    """The API keys of ``HEADWATER_SERVER_API_KEYS``: comma-separated, blanks ignored."""
    raw = _reveal(secret)
    if not raw:
        return ()
    return tuple(key.strip() for key in raw.split(",") if key.strip())


def unauthorized() -> JSONResponse:
    """Prefect's 401 body; it never says which part of the credential was wrong."""
    return JSONResponse(
        {"exception_message": "Unauthorized"},
        status_code=401,
        headers={"WWW-Authenticate": 'Basic realm="headwater"'},
    )


class AuthMiddleware:
    """ASGI middleware refusing HTTP requests without valid credentials.

    Websockets pass through (they authenticate in-band, after the upgrade, as Prefect's
    do), and so do the probes and ``/hooks/`` (each webhook decides for itself).
    """

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not self.authenticator.enabled
            or _is_open(scope)
            or self.authenticator.allows(Headers(scope=scope))
        ):
            await self.app(scope, receive, send)
            return
        await unauthorized()(scope, receive, send)


def _is_open(scope: Scope) -> bool:
    path: str = scope["path"]
    if path.startswith(HOOKS_PREFIX):
        return True
    return path in OPEN_PATHS and scope["method"] in ("GET", "HEAD")
