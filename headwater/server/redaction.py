"""Keeping credentials out of the server's log, at every level (``--log-level debug`` too).

At debug level the websocket library logs every request header and every frame, which is
where ``Authorization``, cookies and the ``auth`` message's token travel. A filter on the
log handlers masks them, and masks the server's own secrets (the auth string, in clear and
base64, and each API key) wherever else they might appear.
"""

from __future__ import annotations

import base64
import copy
import logging
import re
from typing import Any

from headwater.notifications.delivery import MASKED, scrub
from headwater.settings import Settings, get_settings

__all__ = ["CREDENTIAL_HEADERS", "MASK", "SECRET_HEADER", "RedactSecrets", "logging_config"]

MASK = MASKED

SECRET_HEADER = "x-headwater-webhook-secret"
"""Where a caller of a webhook sends the webhook's own secret."""

CREDENTIAL_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-auth-token",
        "x-gitlab-token",
        "x-hub-signature",
        "x-hub-signature-256",
        "x-slack-signature",
        SECRET_HEADER,
    }
)
"""Headers that carry credentials: masked in logs, never shown to webhook templates or
stored in their events."""

_HEADER = re.compile(
    r"(?im)("
    + "|".join(re.escape(name) for name in sorted(CREDENTIAL_HEADERS, key=len, reverse=True))
    + r")(\s*[:=]\s*)([^\r\n'\"]+)"
)
_TOKEN = re.compile(
    r"""(?i)(["']?(?:token|api_key|auth|password|secret)["']?\s*[:=]\s*["']?)([^"',}\s]+)"""
)


def _secrets(settings: Settings) -> list[str]:
    found: list[str] = []
    if settings.server_api_auth_string is not None:
        auth = settings.server_api_auth_string.get_secret_value()
        found += [auth, base64.b64encode(auth.encode()).decode()]
        found += auth.split(":", 1)[1:]  # the password alone (scrub skips short fragments)
    if settings.server_api_keys is not None:
        found += [key.strip() for key in settings.server_api_keys.get_secret_value().split(",")]
    return found


class RedactSecrets(logging.Filter):
    """Mask credentials in every record that passes the handler it is attached to."""

    def __init__(self, name: str = "", settings: Settings | None = None) -> None:
        super().__init__(name)
        self.secrets = _secrets(settings or get_settings())

    def redact(self, text: str) -> str:
        text = _HEADER.sub(lambda m: f"{m[1]}{m[2]}{MASK}", text)
        text = _TOKEN.sub(lambda m: f"{m[1]}{MASK}", text)
        return scrub(text, self.secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        cleaned = self.redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def logging_config(settings: Settings | None = None) -> dict[str, Any]:
    """uvicorn's logging configuration, with :class:`RedactSecrets` on every handler."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact"] = {"()": RedactSecrets, "settings": settings}
    for handler in config.get("handlers", {}).values():
        handler.setdefault("filters", []).append("redact")
    return config
