"""The HTTP call of the ``call-webhook`` action: urllib in a worker thread.

urllib keeps the dependency list short; the call runs in a thread (``anyio.to_thread``)
so the service loop never blocks, bounded by the action's timeout. The result records
what Prefect's does: the status code, the start of the response body and the response
headers with the sensitive ones redacted.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

import anyio.to_thread

from headwater.exceptions import ActionFailed

__all__ = ["call_webhook"]

BODY_LIMIT = 1000
_SENSITIVE = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"}
)
_USER_AGENT = "headwater-automations"


def _redacted(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        name: ("********" if name.lower() in _SENSITIVE else value)
        for name, value in headers.items()
    }


def _send(
    url: str, method: str, payload: str, headers: Mapping[str, str], timeout: float
) -> tuple[int, str, dict[str, str]]:
    data = payload.encode() if payload and method != "GET" else None
    all_headers = {"User-Agent": _USER_AGENT}
    if data is not None:
        try:
            json.loads(payload)
            all_headers["Content-Type"] = "application/json"
        except ValueError:
            all_headers["Content-Type"] = "text/plain; charset=utf-8"
    all_headers.update(headers)
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(BODY_LIMIT).decode("utf-8", "replace")
            return response.status, body, dict(response.headers.items())
    except urllib.error.HTTPError as exc:
        body = exc.read(BODY_LIMIT).decode("utf-8", "replace") if exc.fp is not None else ""
        return exc.code, body, dict(exc.headers.items()) if exc.headers else {}


async def call_webhook(
    url: str, method: str, payload: str, headers: Mapping[str, str], limit: float
) -> dict[str, Any]:
    """Call ``url``; return ``{status_code, response_body, response_headers}``.

    Raises:
        ActionFailed: unreachable or timed out (retryable), or an HTTP error status
            (retryable for 5xx and 429); the details keep the status and body.
    """
    try:
        status, body, response_headers = await anyio.to_thread.run_sync(
            _send, url, method, payload, headers, limit, abandon_on_cancel=True
        )
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ActionFailed(f"could not call {url}: {reason}", retryable=True) from None
    details = {
        "status_code": status,
        "response_body": body,
        "response_headers": _redacted(response_headers),
    }
    if status >= 400:
        raise ActionFailed(
            f"{method} {url} returned HTTP {status}",
            retryable=status >= 500 or status == 429,
            details=details,
        )
    return details
