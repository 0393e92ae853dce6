"""The server's HTTP API, for the CLI: run history, stored events, and posting events.

:class:`HeadwaterClient` returns the same record types the local storage layer does
(:class:`~headwater.storage.FlowRunRecord`, :class:`~headwater.storage.LogEntry`, ...), so a
command prints the same rows whether it read the local file or a server.

Every request carries the credentials of the settings (``Authorization: Basic`` with the
auth string, else ``Bearer`` with the API key). Failures leave as
:class:`~headwater.exceptions.ApiError` naming the URL: httpx's exceptions are translated
here (``map_exceptions``, as httpx itself does at its transport boundary), so the CLI shows
one line such as ``headwater server http://127.0.0.1:4200/api/flow_runs/filter: connection
refused``. httpx is imported when a client is made, not with this module.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from headwater.client.websocket import auth_headers, http_url
from headwater.events.filters import EventFilter
from headwater.events.schema import Event, events_decoder_hook
from headwater.exceptions import ApiAuthError, ApiError, ApiUnavailableError
from headwater.storage.queries import (
    FlowRunDetail,
    FlowRunRecord,
    LogEntry,
    StateRecord,
    TaskRunDetail,
    TaskRunRecord,
)
from headwater.storage.run_filters import (
    PAGE_LIMIT,
    FlowRunFilter,
    LogFilter,
    TaskRunFilter,
    filter_from,
)

if TYPE_CHECKING:
    from types import TracebackType

    import httpx

    from headwater.settings import Settings

__all__ = ["EVENTS_PAGE_LIMIT", "HeadwaterClient"]

T = TypeVar("T")

EVENTS_PAGE_LIMIT = 50
"""Most events the server returns per page of ``/events/filter``."""


class _States(msgspec.Struct):
    states: list[StateRecord] = msgspec.field(default_factory=list)


class _EventsPage(msgspec.Struct):
    events: list[Event]
    next_page: str | None = None


class _Detail(msgspec.Struct):
    detail: str | None = None
    exception_message: str | None = None


_encode = msgspec.json.Encoder().encode


def _body(**fields: Any) -> bytes:
    """A JSON body without the fields that are None (the server's defaults apply)."""
    return _encode({name: value for name, value in fields.items() if value is not None})


class HeadwaterClient:
    """An HTTP client of one headwater server; use it as an async context manager.

    Args:
        settings: the server (``api_url``), credentials and ``api_request_timeout``.
    """

    def __init__(self, settings: Settings) -> None:
        if not settings.api_url:
            raise ApiUnavailableError("(unset)", "HEADWATER_API_URL is not set")
        self.base_url = http_url(settings.api_url)
        self._headers = auth_headers(settings)
        self._timeout = settings.api_request_timeout
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> HeadwaterClient:
        import httpx

        self._client = httpx.AsyncClient(headers=self._headers, timeout=self._timeout)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def request(
        self,
        method: str,
        path_or_url: str,
        *,
        content: bytes | None = None,
        params: dict[str, Any] | None = None,
        missing_ok: bool = False,
    ) -> bytes | None:
        """Send one request and return the response body.

        Args:
            path_or_url: a path under the API URL (``/flow_runs/filter``) or an absolute URL
                the server gave (a ``next_page``).
            missing_ok: answer None for a 404 instead of raising.

        Raises:
            ApiUnavailableError: the server cannot be reached, timed out, or failed (5xx).
            ApiAuthError: the server rejected the credentials (401, 403).
            ApiError: the server refused the request (another 4xx), with its reason.
        """
        import httpx

        client = self._client
        if client is None:
            raise RuntimeError("use HeadwaterClient as an async context manager")
        url = path_or_url if "://" in path_or_url else self.base_url + path_or_url
        headers = {"Content-Type": "application/json"} if content is not None else None
        try:
            response = await client.request(
                method, url, content=content, params=params, headers=headers
            )
        except httpx.ConnectError as exc:
            raise ApiUnavailableError(_shown(url), _connect_reason(exc)) from None
        except httpx.TimeoutException:
            cause = f"no answer within {self._timeout:g} s"
            raise ApiUnavailableError(_shown(url), cause) from None
        except httpx.HTTPError as exc:
            raise ApiUnavailableError(_shown(url), str(exc) or type(exc).__name__) from None
        status = response.status_code
        if status < 400:
            return response.content
        if status == 404 and missing_ok:
            return None
        reason = _reason(response.content) or response.reason_phrase
        if status == 401 or (status == 403 and "token" not in reason.lower()):
            raise ApiAuthError(
                _shown(url),
                f"credentials rejected (HTTP {status}); check HEADWATER_API_AUTH_STRING "
                "or HEADWATER_API_KEY",
            )
        if status >= 500:
            raise ApiUnavailableError(_shown(url), f"HTTP {status}: {reason}")
        raise ApiError(_shown(url), f"HTTP {status}: {reason}")

    async def _post(self, path: str, body: bytes, type_: type[T]) -> T:
        data = await self.request("POST", path, content=body)
        assert data is not None
        return msgspec.json.decode(data, type=type_)

    async def health(self) -> bool:
        """Whether the server answers its health check."""
        return await self.request("GET", "/health") is not None

    # -- runs ----------------------------------------------------------------------------

    async def read_flow_runs(self, **filters: Any) -> list[FlowRunRecord]:
        """Flow runs matching every filter given: the keywords of
        :func:`headwater.storage.read_flow_runs`, paging past the server's 1000 per request.

        Raises:
            TypeError: a keyword that is no filter. ValueError: a value the filter refuses.
        """
        return await self._read_runs("/flow_runs/filter", FlowRunFilter, filters, FlowRunRecord)

    async def read_task_runs(self, **filters: Any) -> list[TaskRunRecord]:
        """Task runs matching every filter given: the keywords of
        :func:`headwater.storage.read_task_runs`, paging past the server's 1000 per request.
        """
        return await self._read_runs("/task_runs/filter", TaskRunFilter, filters, TaskRunRecord)

    async def _read_runs(
        self, path: str, kind: type[Any], filters: dict[str, Any], record: type[T]
    ) -> list[T]:
        limit = int(filters.pop("limit", 50))
        offset = int(filters.pop("offset", 0))
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        found: list[T] = []
        while len(found) < limit:
            page = min(limit - len(found), PAGE_LIMIT)
            body = filter_from(kind, {**filters, "limit": page, "offset": offset + len(found)})
            batch = await self._post(path, _encode(body), list[record])  # type: ignore[valid-type]
            found.extend(batch)
            if len(batch) < page:
                break
        return found

    async def read_flow_run(self, flow_run_id: uuid.UUID) -> FlowRunDetail | None:
        """One flow run and its state history (no logs: see :meth:`read_logs`), or None."""
        data = await self.request("GET", f"/flow_runs/{flow_run_id}", missing_ok=True)
        if data is None:
            return None
        run = msgspec.json.decode(data, type=FlowRunRecord)
        states = msgspec.json.decode(data, type=_States).states
        return FlowRunDetail(run=run, states=states, logs=[])

    async def read_task_run(self, task_run_id: uuid.UUID) -> TaskRunDetail | None:
        """One task run and its state history (no logs), or None."""
        data = await self.request("GET", f"/task_runs/{task_run_id}", missing_ok=True)
        if data is None:
            return None
        run = msgspec.json.decode(data, type=TaskRunRecord)
        states = msgspec.json.decode(data, type=_States).states
        return TaskRunDetail(run=run, states=states, logs=[])

    async def read_logs(self, **filters: Any) -> list[LogEntry]:
        """Run logs, oldest first: the keywords of :func:`headwater.storage.read_logs`."""
        body = filter_from(LogFilter, filters)
        return await self._post("/logs/filter", _encode(body), list[LogEntry])

    # -- events --------------------------------------------------------------------------

    async def read_events(
        self, event_filter: EventFilter | None = None, *, limit: int = 50
    ) -> list[Event]:
        """Up to ``limit`` stored events matching ``event_filter``, following the server's
        pages (of at most :data:`EVENTS_PAGE_LIMIT`) as needed."""
        found: list[Event] = []
        page_size = min(limit, EVENTS_PAGE_LIMIT)
        data = await self.request(
            "POST", "/events/filter", content=_body(filter=event_filter, limit=page_size)
        )
        while data is not None:
            page = msgspec.json.decode(data, type=_EventsPage, dec_hook=events_decoder_hook)
            found.extend(page.events)
            if len(found) >= limit or page.next_page is None or not page.events:
                break
            data = await self.request("GET", page.next_page)
        return found[:limit]

    async def emit_events(self, events: Sequence[Event]) -> None:
        """Post events; the server has published them when this returns (``POST /events``)."""
        await self.request("POST", "/events", content=_encode(list(events)))

    def __repr__(self) -> str:
        return f"<HeadwaterClient {self.base_url!r}>"


def _shown(url: str) -> str:
    """The URL as errors show it: without its query (a page token is long and opaque)."""
    return url.split("?", 1)[0]


def _reason(content: bytes) -> str:
    try:
        detail = msgspec.json.decode(content, type=_Detail)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return content[:200].decode("utf-8", "replace").strip()
    return detail.detail or detail.exception_message or ""


def _connect_reason(exc: BaseException) -> str:
    """Why a connection failed, from the innermost OS error (httpx wraps it twice or more)."""
    text = str(exc) or "cannot connect"
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, OSError) and seen.strerror:
            text = seen.strerror
        seen = seen.__cause__ or seen.__context__
    return text
