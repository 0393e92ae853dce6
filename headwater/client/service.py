"""The forwarder as a service of this process: the remote counterpart of persistence.

When ``HEADWATER_API_URL`` is set, the engine's start hook starts :data:`FORWARDER` instead
of :data:`~headwater.storage.persistence.PERSISTENCE`: a flow run's events go to the server
(or the outbox), not to the local database. The first start opens the outbox on the service
loop, subscribes the forwarder to the bus and waits a moment (at most
:data:`FIRST_CONNECT_WAIT` seconds) for the first connection, so that a run's first events
usually go straight to the server rather than through the outbox.

Failures follow persistence's rule: only what would lose events stops a run. An outbox
that cannot be opened raises (with ``HEADWATER_PERSISTENCE_REQUIRED``, the default) or warns
once; an unreachable server or rejected credentials never raise (events wait in the
outbox, and the forwarder says so once in the log).

Exit (:mod:`headwater.lifecycle`): every published event is handed to the server or the
outbox, a connected forwarder gets a few seconds to send its outbox, and what is left is
released for the next process. On SIGTERM the bus is flushed the same way before the
signal's default action proceeds.
"""

from __future__ import annotations

import logging
from typing import Any

from headwater import lifecycle
from headwater.client.forwarder import Forwarder
from headwater.events.bus import get_bus
from headwater.exceptions import ApiError, StorageError
from headwater.lifecycle import ServiceSpec
from headwater.settings import Settings

__all__ = ["FORWARDER", "ensure_forwarder", "get_forwarder", "stop_forwarder"]

FIRST_CONNECT_WAIT = 2.0
EXIT_FLUSH_TIMEOUT = 10.0


def _key(settings: Settings) -> tuple[Any, ...] | None:
    """The settings the forwarder depends on; others may change without a restart."""
    if not settings.events_enabled or not settings.api_url:
        return None
    return (
        settings.home,
        settings.api_url,
        settings.api_key,
        settings.api_auth_string,
        settings.api_outbox_path,
        settings.api_reconnect_max_delay,
        settings.api_request_timeout,
    )


async def _open(settings: Settings, explicit: bool) -> Forwarder:
    return await Forwarder.open(settings, get_bus())


def _check(forwarder: Forwarder, settings: Settings) -> None:
    error = forwarder.error
    if error is not None and not forwarder.live and settings.persistence_required:
        raise error  # neither the server nor the outbox can take events: they would be lost


def _started(forwarder: Forwarder, settings: Settings) -> None:
    forwarder.connected.wait(min(FIRST_CONNECT_WAIT, settings.api_request_timeout))


FORWARDER: ServiceSpec[Forwarder] = ServiceSpec(
    name="forwarder",
    key=_key,
    open=_open,
    errors=(StorageError, ApiError),
    raises=lambda settings, explicit: settings.persistence_required,
    check=_check,
    started=_started,
    logger=logging.getLogger("headwater.client"),
    unavailable="events are not being kept: %s (HEADWATER_PERSISTENCE_REQUIRED is false)",
)
"""Events forwarded to ``HEADWATER_API_URL``, through a durable outbox when it is down."""


def get_forwarder() -> Forwarder | None:
    """The running forwarder of this process, if any."""
    return lifecycle.get(FORWARDER)


def ensure_forwarder() -> Forwarder | None:
    """Make sure events are being forwarded to ``HEADWATER_API_URL``; cheap after the first call.

    Returns:
        The running :class:`Forwarder`; None when events are disabled, no API URL is set,
        or the outbox cannot be used and ``HEADWATER_PERSISTENCE_REQUIRED`` is false.

    Raises:
        StorageError: the outbox file cannot be opened, or cannot be written while the server
            is unreachable (``HEADWATER_PERSISTENCE_REQUIRED``, the default).
        ApiUnavailableError: ``HEADWATER_API_URL`` is not an http(s) URL.
    """
    return lifecycle.ensure(FORWARDER)


def stop_forwarder(timeout: float = EXIT_FLUSH_TIMEOUT) -> None:
    """Hand everything published so far to the server or the outbox, then stop.

    The next :func:`ensure_forwarder` starts afresh. Safe to call when not running.
    """
    lifecycle.stop(FORWARDER, timeout)
