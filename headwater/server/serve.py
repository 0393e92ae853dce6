"""Running the server: uvicorn, with headwater's websocket protocol and a clean exit.

:func:`serve` blocks until SIGINT or SIGTERM. Then uvicorn stops accepting connections,
closes the websockets (code 1012, "service restart", which clients reconnect after), waits
for requests in flight, and runs the application's shutdown, which commits every event
published so far. The process then exits with status 0: a stop that was asked for is not a
failure (uvicorn would otherwise re-raise the signal and die by it).

Logging: uvicorn's access log prints the client address, method, path and status, never
headers. At debug level the websocket library logs headers and frames; every handler
carries :class:`~headwater.server.redaction.RedactSecrets`, so ``Authorization``, cookies,
tokens and the server's own auth string and API keys are masked at any level.
"""

from __future__ import annotations

from types import FrameType

import uvicorn

from headwater.settings import Settings, get_settings

__all__ = ["build_config", "make_server", "serve"]


class _Server(uvicorn.Server):
    """uvicorn's server, minus re-raising the stopping signal after a graceful shutdown."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def build_config(
    host: str | None = None,
    port: int | None = None,
    *,
    settings: Settings | None = None,
    log_level: str = "info",
    access_log: bool = True,
    **app_options: object,
) -> uvicorn.Config:
    """The uvicorn configuration :func:`serve` uses (tests start servers with it).

    Args:
        host: address to bind; ``HEADWATER_SERVER_HOST`` (default ``127.0.0.1``) when None.
        port: port to bind; ``HEADWATER_SERVER_PORT`` (default 4200) when None; 0 picks one.
        settings: passed to :func:`~headwater.server.app.create_app`.
        log_level: uvicorn's log level.
        access_log: whether to log one line per request.
        app_options: more keyword arguments for :func:`~headwater.server.app.create_app`.
    """
    from headwater.server.app import create_app
    from headwater.server.protocol import CheckpointWebSocketProtocol
    from headwater.server.redaction import logging_config

    settings = settings or get_settings()
    app = create_app(settings, **app_options)  # type: ignore[arg-type]
    return uvicorn.Config(
        app,
        host=settings.server_host if host is None else host,
        port=settings.server_port if port is None else port,
        ws=CheckpointWebSocketProtocol,
        # Events are small and many: compressing each frame for each observer costs more
        # CPU than it saves on the wire.
        ws_per_message_deflate=False,
        lifespan="on",
        log_level=log_level,
        log_config=logging_config(settings),
        access_log=access_log,
        timeout_graceful_shutdown=10,
    )


def serve(
    host: str | None = None,
    port: int | None = None,
    *,
    settings: Settings | None = None,
    log_level: str = "info",
    access_log: bool = True,
) -> None:
    """Run the server until SIGINT/SIGTERM; return once everything is committed and closed."""
    config = build_config(host, port, settings=settings, log_level=log_level, access_log=access_log)
    server = _Server(config)
    server.run()
    if not server.started:
        raise SystemExit(1)  # uvicorn logged why (port taken, database unusable...)


def make_server(config: uvicorn.Config) -> uvicorn.Server:
    """A uvicorn server for ``config`` that exits cleanly on a stopping signal."""
    return _Server(config)
