"""``headwater server start``: the HTTP API, the event websockets and inbound webhooks.

The server binds to 127.0.0.1 unless told otherwise; listening on another address without
credentials (``HEADWATER_SERVER_API_AUTH_STRING`` or ``HEADWATER_SERVER_API_KEYS``) prints a
warning, since anyone who can reach the port could then read and post events. Ctrl-C or
SIGTERM stops it after committing every event it accepted (exit status 0).
"""

from __future__ import annotations

import click

__all__ = ["server"]

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@click.group("server")
def server() -> None:
    """Run the headwater server."""


@server.command("start")
@click.option(
    "--host",
    default=None,
    help="Address to bind (default: HEADWATER_SERVER_HOST, else 127.0.0.1).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port to listen on (default: HEADWATER_SERVER_PORT, else 4200).",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
    help="Level of the server's own log lines.",
)
@click.option("--no-access-log", is_flag=True, help="Do not log one line per request.")
def start(host: str | None, port: int | None, log_level: str, no_access_log: bool) -> None:
    """Serve the API, /api/events/in and /api/events/out, and /hooks/<slug>.

    Events received are stored in the database the settings name (HEADWATER_HOME or
    HEADWATER_DATABASE_URL) and streamed to observers.
    """
    from headwater.server import serve
    from headwater.server.auth import Authenticator
    from headwater.settings import get_settings

    settings = get_settings()
    bound = settings.server_host if host is None else host
    if bound not in _LOOPBACK and not Authenticator.from_settings(settings).enabled:
        click.echo(
            f"Warning: listening on {bound} with no credentials; anyone who can reach it can "
            "read and post events. Set HEADWATER_SERVER_API_AUTH_STRING or "
            "HEADWATER_SERVER_API_KEYS.",
            err=True,
        )
    serve(host, port, settings=settings, log_level=log_level, access_log=not no_access_log)
