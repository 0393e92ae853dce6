"""The automations reactor as a service of this process (:mod:`headwater.lifecycle`).

- A server starts it on purpose (:func:`start_reactor`): automations are evaluated there.
- A plain script gets :func:`ensure_reactor` from the engine's start hook at every run
  start. It starts nothing when automations are off, when a server is configured
  (``HEADWATER_API_URL``: the server's reactor sees the events), or when no enabled
  automation exists; that last answer is remembered for :data:`RECHECK_INTERVAL` seconds
  (or until this process stores an automation), so a run start costs a dict lookup.

The reactor stops before persistence and the forwarder (``stops_before``): every event
already published is evaluated, queued actions finish (within :data:`EXIT_TIMEOUT`), state
is checkpointed, and then the events the actions emitted are still written.
"""

from __future__ import annotations

import logging
from typing import Any

from headwater import lifecycle
from headwater.automations.reactor import Reactor
from headwater.automations.store import any_enabled
from headwater.events.bus import get_bus
from headwater.exceptions import StorageError
from headwater.lifecycle import ServiceSpec
from headwater.settings import Settings, get_settings
from headwater.storage.database import Database

__all__ = [
    "EXIT_TIMEOUT",
    "REACTOR",
    "ensure_reactor",
    "get_reactor",
    "start_reactor",
    "stop_reactor",
]

logger = logging.getLogger("headwater.automations")

RECHECK_INTERVAL = 5.0
EXIT_TIMEOUT = 10.0


def _key(settings: Settings) -> tuple[Any, ...] | None:
    if not (settings.automations_enabled and settings.events_enabled):
        return None
    return (settings.home, settings.database_url, settings.automations_minimum_proactive_within)


async def _open(settings: Settings, explicit: bool) -> Reactor | None:
    if not explicit:
        try:
            database = await Database.open(settings=settings)
            try:
                found = await any_enabled(database)
            finally:
                await database.close()
        except StorageError as exc:
            logger.warning("automations are not evaluated: %s", exc)
            return None
        if not found:
            return None
    return await Reactor.open(settings, get_bus())


REACTOR: ServiceSpec[Reactor] = ServiceSpec(
    name="automations",
    key=_key,
    open=_open,
    errors=(StorageError, TimeoutError),
    # automations failing to load must not stop the flow that is starting
    raises=lambda settings, explicit: explicit,
    retry_after=RECHECK_INTERVAL,
    stops_before=("persistence", "forwarder"),
    logger=logger,
    unavailable="automations are not evaluated in this process: %s",
)
"""Automations evaluated against this process's bus."""


def get_reactor() -> Reactor | None:
    """The reactor running in this process, if any."""
    return lifecycle.get(REACTOR)


def ensure_reactor() -> Reactor | None:
    """Start the reactor in this process if it should run here; cheap once answered.

    Returns:
        The running reactor, or None when none should run in this process.
    """
    settings = get_settings()
    if settings.api_url:
        return None
    return lifecycle.ensure(REACTOR, settings)


def start_reactor(settings: Settings | None = None) -> Reactor | None:
    """Start the reactor in this process whether or not automations exist (for a server).

    Returns:
        The reactor; None when automations or events are disabled.

    Raises:
        StorageError: the database cannot be opened.
    """
    return lifecycle.ensure(REACTOR, settings, explicit=True)


def stop_reactor(timeout: float = EXIT_TIMEOUT) -> None:
    """Evaluate what was published, finish queued actions, checkpoint, stop. Idempotent."""
    lifecycle.stop(REACTOR, timeout)
