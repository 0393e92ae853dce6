"""Starting and stopping the reactor of this process.

- A server calls :func:`start_reactor` once: automations are evaluated there.
- A plain script gets :func:`ensure_reactor` from the engine's start hook at every run
  start. It starts nothing when automations are off, when a server is configured
  (``HEADWATER_API_URL``: the server's reactor sees the events), or when no enabled
  automation exists; that last answer is remembered for :data:`RECHECK_INTERVAL` seconds
  (or until this process changes an automation), so a run start costs a dict lookup.

At interpreter exit, :func:`stop_reactor` runs before persistence's own exit handler:
every event already published is evaluated, queued actions finish (within
:data:`EXIT_TIMEOUT`), state is checkpointed, and then persistence writes the events the
actions emitted.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from typing import Any

from headwater.automations.reactor import Reactor
from headwater.events.bus import get_bus
from headwater.events.service import get_service_loop
from headwater.exceptions import StorageError
from headwater.settings import Settings, get_settings

__all__ = [
    "EXIT_TIMEOUT",
    "automations_changed",
    "ensure_reactor",
    "get_reactor",
    "start_reactor",
    "stop_reactor",
]

logger = logging.getLogger("headwater.automations")

RECHECK_INTERVAL = 5.0
EXIT_TIMEOUT = 10.0

_active: Reactor | None = None
_none_until: tuple[Any, float] | None = None  # (settings key, monotonic deadline)
_lock = threading.Lock()
_exit_handler_installed = False


def _key(settings: Settings) -> tuple[Any, ...]:
    return (settings.home, settings.database_url, settings.automations_minimum_proactive_within)


def get_reactor() -> Reactor | None:
    """The reactor running in this process, if any."""
    return _active


def automations_changed() -> None:
    """Forget the cached "no automations here" answer (an automation was just stored)."""
    global _none_until
    _none_until = None


def ensure_reactor() -> Reactor | None:
    """Start the reactor in this process if it should run here; cheap once answered.

    Returns:
        The running reactor, or None when none should run in this process.
    """
    settings = get_settings()
    if settings.api_url or not (settings.automations_enabled and settings.events_enabled):
        return None
    active = _active
    if active is not None and _key(active.settings) == _key(settings):
        return active
    cached = _none_until
    if cached is not None and cached[0] == _key(settings) and time.monotonic() < cached[1]:
        return None
    with _lock:
        return _ensure_locked(settings, require_automations=True)


def start_reactor(settings: Settings | None = None) -> Reactor:
    """Start the reactor in this process whether or not automations exist (for a server).

    Raises:
        StorageError: the database cannot be opened.
    """
    with _lock:
        reactor = _ensure_locked(settings or get_settings(), require_automations=False)
    assert reactor is not None
    return reactor


def _ensure_locked(settings: Settings, *, require_automations: bool) -> Reactor | None:
    global _active, _none_until
    active = _active
    if active is not None:
        if _key(active.settings) == _key(settings):
            return active
        _stop(active, EXIT_TIMEOUT)
        _active = None
    service = get_service_loop()
    if threading.current_thread() is service.thread:
        raise RuntimeError("the reactor cannot be started from the service loop itself")
    if require_automations:
        try:
            found = service.run_coroutine(_any_enabled(settings), timeout=30.0)
        except StorageError as exc:
            logger.warning("automations are not evaluated: %s", exc)
            found = False
        if not found:
            _none_until = (_key(settings), time.monotonic() + RECHECK_INTERVAL)
            return None
    try:
        reactor = service.run_coroutine(Reactor.open(settings, get_bus()), timeout=60.0)
    except (StorageError, TimeoutError) as exc:
        if not require_automations:
            raise
        # Automations failing to load must not stop the flow that is starting.
        logger.warning("automations are not evaluated in this process: %s", exc)
        _none_until = (_key(settings), time.monotonic() + RECHECK_INTERVAL)
        return None
    service.start_soon(reactor.serve, name="headwater automations")
    _active = reactor
    _none_until = None
    _install_exit_handler()
    return reactor


async def _any_enabled(settings: Settings) -> bool:
    from headwater.automations.store import any_enabled
    from headwater.storage.database import Database

    database = await Database.open(settings=settings)
    try:
        return await any_enabled(database)
    finally:
        await database.close()


def _stop(reactor: Reactor, timeout: float) -> None:
    service = get_service_loop()
    if service.thread is None or threading.current_thread() is service.thread:
        return
    try:
        service.run_coroutine(reactor.aclose(timeout), timeout=2 * timeout + 5.0)
    except (TimeoutError, RuntimeError) as exc:
        logger.warning("the automations reactor did not stop cleanly: %s", exc)


def stop_reactor(timeout: float = EXIT_TIMEOUT) -> None:
    """Evaluate what was published, finish queued actions, checkpoint, stop. Idempotent."""
    global _active
    with _lock:
        active, _active = _active, None
        if active is not None:
            _stop(active, timeout)


def _install_exit_handler() -> None:
    global _exit_handler_installed
    if not _exit_handler_installed:
        # Registered after persistence's handler, so it runs first (atexit is LIFO) and the
        # events our actions emit at exit are still written.
        atexit.register(_stop_at_exit)
        _exit_handler_installed = True


def _stop_at_exit() -> None:
    try:
        stop_reactor(EXIT_TIMEOUT)
    except Exception:
        logger.exception("stopping the automations reactor at exit failed")
