"""The headwater server as an ASGI application: :func:`create_app`.

Routes (JSON over HTTP unless noted; see each module for the details):

- ``GET /api/health``, ``GET /api/ready``: probes, open to all;
- ``/api/flow_runs``, ``/api/task_runs``, ``/api/logs``: run history
  (:mod:`~headwater.server.routes_runs`);
- ``/api/events``: query and post events (:mod:`~headwater.server.routes_events`);
- ``WS /api/events/in``: ingest (:mod:`~headwater.server.ingest`);
- ``WS /api/events/out``: live feed with backfill (:mod:`~headwater.server.feed`);
- ``/api/webhooks``: webhook definitions (:mod:`~headwater.server.routes_webhooks`);
- ``/api/deployments``, ``/api/flows``, ``/api/runner``: deployments and their runs
  (:mod:`~headwater.server.routes_deployments`);
- ``/hooks/{slug}``: inbound webhooks (:mod:`~headwater.server.webhooks`).

The application's lifespan starts persistence (the lossless bus subscriber that writes every
event to the database, on headwater's service loop) and opens the server's own database
connection; on shutdown it closes that connection and stops persistence, which commits
everything published before. Persistence follows the process's ``HEADWATER_*`` settings;
the ``settings`` given to :func:`create_app` decide credentials and limits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from headwater.events.bus import EventBus, get_bus
from headwater.server import (
    routes_deployments,
    routes_events,
    routes_runs,
    routes_webhooks,
    webhooks,
)
from headwater.server.auth import AuthMiddleware
from headwater.server.errors import JSONResponse, exception_handlers
from headwater.server.feed import feed_endpoint
from headwater.server.ingest import ingest_endpoint
from headwater.server.state import ServerState, get_state
from headwater.settings import Settings, get_settings
from headwater.storage.database import open_database

__all__ = ["DEFAULT_FEED_BUFFER_SIZE", "DEFAULT_MAX_OBSERVERS", "create_app"]

DEFAULT_FEED_BUFFER_SIZE = 4096
"""Events buffered per observer before it is counted as too slow and gets a gap notice."""

DEFAULT_MAX_OBSERVERS = 1000
DEFAULT_OBSERVER_SEND_TIMEOUT = 30.0
"""Most ``/events/out`` connections at once; more are closed with 1013 (try again later)."""


async def health(request: Request) -> JSONResponse:
    return JSONResponse(True)


async def ready(request: Request) -> JSONResponse:
    """200 once the database is open and, if the server runs it, persistence is healthy."""
    state = get_state(request)
    if not state.ready:
        return JSONResponse({"ready": False, "detail": "starting"}, status_code=503)
    if state.manage_persistence:
        from headwater.storage.persistence import get_persistence

        persistence = get_persistence()
        if persistence is None or persistence.writer.error is not None:
            error = "not running" if persistence is None else str(persistence.writer.error)
            return JSONResponse({"ready": False, "detail": f"persistence: {error}"}, 503)
    return JSONResponse({"ready": True, "observers": len(state.observers)})


def _api_routes() -> list[BaseRoute]:
    return [
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        *routes_runs.routes(),
        *routes_deployments.routes(),
        *routes_events.routes(),
        *routes_webhooks.routes(),
        WebSocketRoute("/events/in", ingest_endpoint),
        WebSocketRoute("/events/out", feed_endpoint),
    ]


def create_app(
    settings: Settings | None = None,
    *,
    bus: EventBus | None = None,
    manage_persistence: bool = True,
    feed_buffer_size: int = DEFAULT_FEED_BUFFER_SIZE,
    max_observers: int = DEFAULT_MAX_OBSERVERS,
    observer_send_timeout: float = DEFAULT_OBSERVER_SEND_TIMEOUT,
) -> Starlette:
    """Build the server application.

    Args:
        settings: credentials and limits; the process settings by default.
        bus: where accepted events go and observers listen; the process-wide bus by default.
        manage_persistence: start persistence at startup and stop it (committing everything
            published) at shutdown; False when the embedding process manages it.
        feed_buffer_size: each observer's buffer, in events (see :mod:`~.feed`).
        max_observers: most concurrent ``/events/out`` connections.
        observer_send_timeout: seconds a frame may wait for an observer that does not read
            before it is disconnected (freeing its slot).

    Returns:
        A Starlette application; serve it with :func:`~headwater.server.serve.serve` or any
        ASGI server whose websockets answer pings after the application reads (see
        :mod:`~headwater.server.protocol`).
    """
    if feed_buffer_size < 1:
        raise ValueError(f"feed_buffer_size must be at least 1, got {feed_buffer_size}")
    state = ServerState(
        settings or get_settings(),
        bus or get_bus(),
        feed_buffer_size=feed_buffer_size,
        max_observers=max_observers,
        observer_send_timeout=observer_send_timeout,
    )
    state.manage_persistence = manage_persistence

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        from headwater.automations import start_reactor, stop_reactor
        from headwater.storage.persistence import ensure_persistence, stop_persistence

        if manage_persistence:
            # It opens the database on the service loop and waits for it: not on this loop.
            await anyio.to_thread.run_sync(ensure_persistence)
            # automations run where the events arrive: here, for every forwarding process
            await anyio.to_thread.run_sync(start_reactor)
        state.database = await open_database(settings=state.settings)
        state.fanout.start()
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(state.fanout.run)
                try:
                    yield
                finally:
                    state.fanout.close()
                    group.cancel_scope.cancel()
        finally:
            database, state.database = state.database, None
            for queue in list(state.observers):
                queue.close()
            await database.close()
            if manage_persistence:
                await anyio.to_thread.run_sync(stop_reactor)
                await anyio.to_thread.run_sync(stop_persistence)

    app = Starlette(
        routes=[Mount("/api", routes=_api_routes()), *webhooks.routes()],
        middleware=[Middleware(AuthMiddleware, authenticator=state.authenticator)],
        exception_handlers=exception_handlers(),
        lifespan=lifespan,
    )
    app.state.headwater = state
    return app
