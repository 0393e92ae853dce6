"""Starting and stopping this process's forwarder: the remote counterpart of persistence.

When ``HEADWATER_API_URL`` is set, the engine's start hook calls :func:`ensure_forwarder`
instead of :func:`~headwater.storage.ensure_persistence`: a flow run's events go to the
server (or the outbox), not to the local database. The first call opens the outbox on the
service loop, subscribes the forwarder to the bus and waits a moment (at most
:data:`FIRST_CONNECT_WAIT` seconds) for the first connection, so that a run's first events
usually go straight to the server rather than through the outbox.

Failures follow persistence's rule: only what would lose events stops a run. An outbox
that cannot be opened raises (with ``HEADWATER_PERSISTENCE_REQUIRED``, the default) or warns
once; an unreachable server or rejected credentials never raise (events wait in the
outbox, and the forwarder says so once in the log).

Exit: an ``atexit`` handler (registered after the service loop's, so it runs first) hands
every published event to the server or the outbox, gives a connected forwarder a few
seconds to send its outbox, and releases what is left for the next process. On SIGTERM,
when no other handler is installed, the bus is flushed the same way before the signal's
default action proceeds.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
from typing import Any

from headwater.client.forwarder import Forwarder
from headwater.events.bus import get_bus
from headwater.events.service import get_service_loop
from headwater.exceptions import ApiError, StorageError
from headwater.settings import Settings, get_settings

__all__ = ["ensure_forwarder", "get_forwarder", "stop_forwarder"]

logger = logging.getLogger("headwater.client")

FIRST_CONNECT_WAIT = 2.0
EXIT_FLUSH_TIMEOUT = 10.0

_active: Forwarder | None = None
_failure: tuple[tuple[Any, ...], StorageError | ApiError] | None = None
_lock = threading.Lock()
_exit_handler_installed = False
_sigterm_installed = False


def get_forwarder() -> Forwarder | None:
    """The running forwarder of this process, if any."""
    return _active


def _key(settings: Settings) -> tuple[Any, ...]:
    """The settings the forwarder depends on; others may change without a restart."""
    return (
        settings.home,
        settings.api_url,
        settings.api_key,
        settings.api_auth_string,
        settings.api_outbox_path,
        settings.api_reconnect_max_delay,
        settings.api_request_timeout,
    )


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
    settings = get_settings()
    active = _active
    if active is None or active.settings is not settings:
        with _lock:
            active = _ensure_locked(settings)
        if active is None:
            return None
    error = active.error
    if error is not None and not active.live and settings.persistence_required:
        raise error  # neither the server nor the outbox can take events: they would be lost
    return active


def _ensure_locked(settings: Settings) -> Forwarder | None:
    global _active, _failure
    if not settings.events_enabled or not settings.api_url:
        return None
    key = _key(settings)
    active = _active
    if active is not None:
        if active.key == key:
            active.settings = settings  # the next call takes the fast path
            return active
        _stop(active, EXIT_FLUSH_TIMEOUT)
        _active = active = None
    failure = _failure
    if failure is not None and failure[0] == key:
        if settings.persistence_required:
            raise failure[1]
        return None
    service = get_service_loop()
    if threading.current_thread() is service.thread:
        raise RuntimeError(
            "ensure_forwarder() cannot start from the service loop; "
            "call it from the thread that starts the run"
        )
    try:
        active = service.run_coroutine(
            _open(settings), timeout=settings.database_busy_timeout + 30.0
        )
    except (StorageError, ApiError) as exc:
        _failure = (key, exc)
        if settings.persistence_required:
            raise
        logger.warning(
            "events are not being kept: %s (HEADWATER_PERSISTENCE_REQUIRED is false)", exc
        )
        return None
    active.key = key
    service.start_soon(active.serve, name="headwater forwarder")
    _active = active
    _failure = None
    _install_exit_handlers()
    active.connected.wait(min(FIRST_CONNECT_WAIT, settings.api_request_timeout))
    return active


async def _open(settings: Settings) -> Forwarder:
    _keep_signals_for_the_main_thread()
    return await Forwarder.open(settings, get_bus())


def _keep_signals_for_the_main_thread() -> None:
    # Runs on the service thread (as persistence does). A process-directed SIGTERM goes to
    # any thread that does not block it; one taken by this thread (or the outbox's worker
    # threads, which inherit its mask) would not interrupt the main thread's sleep, so the
    # Python-level handler, which only the main thread runs, could wait indefinitely.
    if (
        hasattr(signal, "pthread_sigmask")
        and threading.current_thread() is not threading.main_thread()
    ):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})


def _install_exit_handlers() -> None:
    global _exit_handler_installed, _sigterm_installed
    if not _exit_handler_installed:
        # Registered after the service loop's own handler, so it runs first (LIFO).
        atexit.register(_close_at_exit)
        _exit_handler_installed = True
    if not _sigterm_installed and threading.current_thread() is threading.main_thread():
        try:
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                signal.signal(signal.SIGTERM, _on_sigterm)
                _sigterm_installed = True
        except (ValueError, OSError):
            pass  # not the main interpreter, or no signals here


def _stop(active: Forwarder, timeout: float) -> None:
    service = get_service_loop()
    if service.thread is None or threading.current_thread() is service.thread:
        return
    try:
        service.run_coroutine(active.aclose(timeout), timeout=timeout + 5.0)
    except (TimeoutError, RuntimeError) as exc:
        logger.warning("the forwarder did not stop cleanly: %s", exc)


def stop_forwarder(timeout: float = EXIT_FLUSH_TIMEOUT) -> None:
    """Hand everything published so far to the server or the outbox, then stop.

    The next :func:`ensure_forwarder` starts afresh. Safe to call when not running.
    """
    global _active, _failure
    with _lock:
        active, _active, _failure = _active, None, None
        if active is not None:
            _stop(active, timeout)


def _close_at_exit() -> None:
    try:
        stop_forwarder(EXIT_FLUSH_TIMEOUT)
    except Exception:
        logger.exception("forwarding events at exit failed")


def _on_sigterm(signum: int, frame: Any) -> None:
    # Hand what was published to the server or the outbox, then let the signal do what it
    # would have done. No lock is taken: the signal may have interrupted a holder of one.
    try:
        get_bus().flush(timeout=EXIT_FLUSH_TIMEOUT)
    except Exception:
        logger.exception("forwarding events on SIGTERM failed")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def _reset_after_fork() -> None:
    # The parent's service loop and outbox connection do not exist in the child.
    global _active, _failure, _lock
    _active = None
    _failure = None
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
