"""HTTP errors and JSON bodies: every failure is ``{"detail": "..."}`` saying what was wrong.

Request bodies are decoded straight into msgspec Structs (``forbid_unknown_fields``), so a
bad body gets a 422 naming the field and what was expected, e.g. ``invalid request body:
Expected `int` <= 50 - at `$.limit```. An unknown id is a 404, a database that cannot be
used a 503, anything unexpected a 500 whose details go to the server log, not the client.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from headwater.exceptions import StorageError

__all__ = [
    "HTTPError",
    "JSONResponse",
    "decode_body",
    "exception_handlers",
    "read_body",
]

logger = logging.getLogger("headwater.server")

T = TypeVar("T")

MAX_BODY_BYTES = 1024 * 1024
"""Largest body of an ordinary API request (filters, webhook definitions)."""

_encoder = msgspec.json.Encoder()


class HTTPError(Exception):
    """Raised by a route to answer ``status`` with ``{"detail": detail}``."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class JSONResponse(Response):
    """A JSON response encoded by msgspec (Structs, UUIDs and datetimes included)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _encoder.encode(content)


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (without reading it all)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, f"request body is {declared} bytes; at most {limit} are accepted")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, f"request body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def decode_body(request: Request, type_: type[T], limit: int = MAX_BODY_BYTES) -> T:
    """Decode the JSON body as ``type_``; an empty body counts as ``{}``.

    Raises:
        HTTPError: 422 naming the field and the expected type, or 413 for a body too large.
    """
    body = await read_body(request, limit)
    try:
        return msgspec.json.decode(body.strip() or b"{}", type=type_)
    except msgspec.ValidationError as exc:
        raise HTTPError(422, f"invalid request body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise HTTPError(422, f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise HTTPError(422, "request body nests too deeply") from None


def _detail(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPError)
    return _detail(exc.status, exc.detail)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _storage_error(request: Request, exc: Exception) -> Response:
    logger.error("%s %s: %s", request.method, request.url.path, exc)
    return _detail(503, f"the database cannot be used: {exc}")


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    return _detail(500, "Internal Server Error")


def exception_handlers() -> dict[Any, Any]:
    """The handlers :func:`~headwater.server.app.create_app` installs."""
    return {
        HTTPError: _api_error,
        HTTPException: _http_exception,
        StorageError: _storage_error,
        Exception: _unexpected,
    }
