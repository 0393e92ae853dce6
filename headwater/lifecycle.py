"""One lifecycle for every background service of a process: start on demand, stop in order.

A service (persistence, the forwarder, the automations reactor, and the orchestration
services after them) is declared once as a :class:`ServiceSpec`: which settings it depends
on, how it opens, what to check on the fast path, what to do once started and stopped, and
which services must stop *after* it. This module then owns, for all of them:

- one running instance per spec, keyed by the settings it depends on (another
  ``HEADWATER_HOME`` under ``temporary_settings`` restarts it with the new ones);
- the memory of a failed (or empty) start, so that every run start does not retry it;
- the order of stopping, as data: :func:`stop_all` stops a service before those named in its
  ``stops_before`` (the reactor drains, and its actions' events are then written, before
  persistence writes its last events);
- the process's handlers, installed once: ``atexit`` (stop everything, in order), SIGTERM
  (when no other handler is installed: the termination hooks first, so live runs end
  Crashed; then flush every service and let the default action terminate the process)
  and an after-fork reset (the parent's services do not exist in a
  forked child).

Services live on the service loop (:mod:`headwater.events.service`); ``open`` runs there, so
the threads a service starts inherit a signal mask that leaves SIGTERM to the main thread.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, Protocol, TypeVar

from headwater.events.bus import get_bus
from headwater.settings import Settings, get_settings

__all__ = [
    "EXIT_TIMEOUT",
    "Service",
    "ServiceSpec",
    "ensure",
    "forget",
    "register_termination_hook",
    "get",
    "running",
    "stop",
    "stop_all",
]

logger = logging.getLogger("headwater")

EXIT_TIMEOUT = 10.0
"""Seconds each service gets to finish what it holds at exit, on SIGTERM or on a restart."""


class Service(Protocol):
    """What the lifecycle asks of a running service (all of it on the service loop)."""

    async def serve(self) -> None:
        """Run until closed or cancelled."""

    async def aclose(self, timeout: float) -> None:
        """Finish what was handed to it (within ``timeout``), then make :meth:`serve` return."""


S = TypeVar("S", bound=Service)


def _always(settings: Settings, explicit: bool) -> bool:
    return True


class ServiceSpec(Generic[S]):
    """How one kind of service starts, is checked, and stops.

    Attributes:
        name: shown in logs and used by other specs' ``stops_before``.
        key: the settings the service depends on, or None when it must not run with these
            settings (events off, no server configured, ...). A change of key restarts it.
        open: builds the service on the service loop; ``explicit`` is true when started on
            purpose (a server) rather than by a run start. Returning None means "nothing to
            run now" and is remembered for ``retry_after`` seconds.
        errors: the exceptions of ``open`` that mean "cannot start" (remembered, not retried
            until the key changes or ``retry_after`` passes).
        raises: whether such an error reaches the caller (else it is logged once).
        retry_after: seconds a failed or empty start is remembered; None: until the key changes.
        check: called on every :func:`ensure` of a running service (the fast path); raises
            when the service can no longer do its job.
        started / stopped: called in the caller's thread after start and after stop.
        on_sigterm: called (with the bus already flushed) before SIGTERM terminates the process.
        stops_before: names of services that must stop after this one.
        logger: where a start that fails without raising is reported, with ``unavailable``
            (a %-format taking the error).
    """

    __slots__ = (
        "name",
        "key",
        "open",
        "errors",
        "raises",
        "retry_after",
        "check",
        "started",
        "stopped",
        "on_sigterm",
        "stops_before",
        "logger",
        "unavailable",
    )

    def __init__(
        self,
        *,
        name: str,
        key: Callable[[Settings], Hashable | None],
        open: Callable[[Settings, bool], Awaitable[S | None]],
        errors: tuple[type[Exception], ...] = (),
        raises: Callable[[Settings, bool], bool] = _always,
        retry_after: float | None = None,
        check: Callable[[S, Settings], None] | None = None,
        started: Callable[[S, Settings], None] | None = None,
        stopped: Callable[[S], None] | None = None,
        on_sigterm: Callable[[S], None] | None = None,
        stops_before: tuple[str, ...] = (),
        logger: logging.Logger = logger,
        unavailable: str = "a headwater service is not running in this process: %s",
    ) -> None:
        self.name = name
        self.key = key
        self.open = open
        self.errors = errors
        self.raises = raises
        self.retry_after = retry_after
        self.check = check
        self.started = started
        self.stopped = stopped
        self.on_sigterm = on_sigterm
        self.stops_before = stops_before
        self.logger = logger
        self.unavailable = unavailable

    def __repr__(self) -> str:
        return f"<ServiceSpec {self.name!r}>"


class _Running:
    __slots__ = ("instance", "key", "settings")

    def __init__(self, instance: Any, key: Hashable, settings: Settings) -> None:
        self.instance = instance
        self.key = key
        self.settings = settings


class _Remembered:
    """A start that did not happen: failed (``error``), empty, or not wanted (key None)."""

    __slots__ = ("key", "settings", "error", "until")

    def __init__(
        self, key: Hashable, settings: Settings, error: Exception | None, until: float | None
    ) -> None:
        self.key = key
        self.settings = settings
        self.error = error
        self.until = until  # monotonic deadline; None: until the key changes

    def holds(self, key: Hashable, explicit: bool) -> bool:
        if self.key != key or (self.until is not None and time.monotonic() >= self.until):
            return False
        return not explicit or self.error is not None  # asked on purpose: try an empty one again


_running: dict[ServiceSpec[Any], _Running] = {}
_remembered: dict[ServiceSpec[Any], _Remembered] = {}
_lock = threading.RLock()
_sigterm_installed = False
_exit_installed = False
_terminating = False
_termination_hooks: list[Callable[[], None]] = []


def get(spec: ServiceSpec[S]) -> S | None:
    """The running instance of ``spec`` in this process, if any."""
    entry = _running.get(spec)
    return None if entry is None else entry.instance


def running() -> list[str]:
    """Names of the services running in this process, in the order they stop."""
    return [spec.name for spec in _stop_order(list(_running))]


def ensure(
    spec: ServiceSpec[S], settings: Settings | None = None, *, explicit: bool = False
) -> S | None:
    """Make sure ``spec``'s service runs with ``settings`` (default: the current ones).

    Cheap once running: a dict lookup, an identity check of the settings and ``spec.check``.

    Returns:
        The running service, or None when it must not (or cannot, without raising) run.

    Raises:
        Exception: one of ``spec.errors`` when ``spec.raises`` says so; the same error again on
            later calls, without a new attempt, until the settings it depends on change.
        RuntimeError: called from the service loop itself, where starting would deadlock.
    """
    settings = settings or get_settings()
    entry = _running.get(spec)
    if entry is not None and entry.settings is settings:
        instance = entry.instance
    else:
        remembered = _remembered.get(spec)
        if remembered is not None and remembered.settings is settings:
            return _answer(spec, remembered, settings, explicit)
        with _lock:
            instance = _ensure_locked(spec, settings, explicit)
        if instance is None:
            return None
    if spec.check is not None:
        spec.check(instance, settings)
    return instance  # type: ignore[no-any-return]


def _answer(
    spec: ServiceSpec[S], remembered: _Remembered, settings: Settings, explicit: bool
) -> S | None:
    if not remembered.holds(remembered.key, explicit):
        with _lock:
            return _ensure_locked(spec, settings, explicit)
    if remembered.error is not None and spec.raises(settings, explicit):
        raise remembered.error
    return None


def _ensure_locked(spec: ServiceSpec[S], settings: Settings, explicit: bool) -> S | None:
    key = spec.key(settings)
    entry = _running.get(spec)
    if entry is not None:
        if key is not None and entry.key == key:
            entry.settings = settings  # the next call takes the fast path
            return entry.instance  # type: ignore[no-any-return]
        _stop_locked(spec, EXIT_TIMEOUT)
    if key is None:
        _remembered[spec] = _Remembered(None, settings, None, None)
        return None
    remembered = _remembered.get(spec)
    if remembered is not None and remembered.holds(key, explicit):
        _remembered[spec] = _Remembered(key, settings, remembered.error, remembered.until)
        if remembered.error is not None and spec.raises(settings, explicit):
            raise remembered.error
        return None
    from headwater.events.service import get_service_loop  # imported when a service starts

    service = get_service_loop()
    if threading.current_thread() is service.thread:
        raise RuntimeError(
            f"the {spec.name} service cannot start from the service loop; "
            "start it from the thread that starts the run"
        )
    until = None if spec.retry_after is None else time.monotonic() + spec.retry_after
    try:
        instance = service.run_coroutine(
            _open(spec, settings, explicit), timeout=settings.database_busy_timeout + 30.0
        )
    except spec.errors as exc:
        _remembered[spec] = _Remembered(key, settings, exc, until)
        if spec.raises(settings, explicit):
            raise
        spec.logger.warning(spec.unavailable, exc)
        return None
    if instance is None:
        _remembered[spec] = _Remembered(key, settings, None, until)
        return None
    _remembered.pop(spec, None)
    service.start_soon(instance.serve, name=f"headwater {spec.name}")
    _running[spec] = _Running(instance, key, settings)
    _install_process_handlers()
    if spec.started is not None:
        spec.started(instance, settings)
    return instance


async def _open(spec: ServiceSpec[S], settings: Settings, explicit: bool) -> S | None:
    _keep_signals_for_the_main_thread()
    return await spec.open(settings, explicit)


def forget(name: str) -> None:
    """Forget a remembered failed or empty start of the service ``name`` (its reason went
    away: an automation was just stored, say), so that the next :func:`ensure` tries again."""
    for spec in list(_remembered):
        if spec.name == name:
            _remembered.pop(spec, None)


def stop(spec: ServiceSpec[Any], timeout: float = EXIT_TIMEOUT) -> None:
    """Stop ``spec``'s service (it finishes what it holds within ``timeout``); idempotent.

    The next :func:`ensure` starts afresh, and a remembered failure is forgotten.
    """
    with _lock:
        _remembered.pop(spec, None)
        _stop_locked(spec, timeout)


def _stop_locked(spec: ServiceSpec[Any], timeout: float) -> None:
    entry = _running.pop(spec, None)
    if entry is None:
        return
    if spec.stopped is not None:
        spec.stopped(entry.instance)
    from headwater.events.service import get_service_loop

    service = get_service_loop()
    if service.thread is None or threading.current_thread() is service.thread:
        return
    try:
        service.run_coroutine(entry.instance.aclose(timeout), timeout=2 * timeout + 5.0)
    except (TimeoutError, RuntimeError) as exc:
        logger.warning("the %s service did not stop cleanly: %s", spec.name, exc)


def stop_all(timeout: float = EXIT_TIMEOUT) -> None:
    """Stop every running service, each before the services named in its ``stops_before``."""
    with _lock:
        for spec in _stop_order(list(_running)):
            _remembered.pop(spec, None)
            try:
                _stop_locked(spec, timeout)
            except Exception:
                logger.exception("stopping the %s service failed", spec.name)


def _stop_order(specs: list[ServiceSpec[Any]]) -> list[ServiceSpec[Any]]:
    """Specs ordered so that each comes before those it ``stops_before`` (stable otherwise)."""
    names = {spec.name for spec in specs}
    later: dict[str, set[str]] = {spec.name: set() for spec in specs}  # name -> must stop first
    for spec in specs:
        for after in spec.stops_before:
            if after in names:
                later[after].add(spec.name)
    ordered: list[ServiceSpec[Any]] = []
    done: set[str] = set()
    pending = list(specs)
    while pending:
        ready = [spec for spec in pending if later[spec.name] <= done]
        if not ready:  # a loop in the declarations: stop the rest in start order
            ready = pending[:1]
        for spec in ready:
            ordered.append(spec)
            done.add(spec.name)
            pending.remove(spec)
    return ordered


def _keep_signals_for_the_main_thread() -> None:
    # Runs on the service thread. A process-directed SIGTERM goes to any thread that does
    # not block it; one taken by this thread (or by the threads it starts, which inherit its
    # mask) would not interrupt the main thread's sleep, so the Python-level handler, which
    # only the main thread runs, could wait indefinitely.
    if (
        hasattr(signal, "pthread_sigmask")
        and threading.current_thread() is not threading.main_thread()
    ):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})


def _install_process_handlers() -> None:
    global _exit_installed, _sigterm_installed
    if not _exit_installed:
        # Registered once a service has started, so after the bus's and the service loop's
        # own handlers: it runs first, and services finish, in order, before the bus
        # flushes and the loop stops.
        atexit.register(_stop_at_exit)
        _exit_installed = True
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
            _sigterm_installed = True
    except (ValueError, OSError):
        pass  # not the main interpreter, or no signals here


def register_termination_hook(hook: Callable[[], None], *, first: bool = False) -> None:
    """Call ``hook`` in the main thread when SIGTERM arrives, before services flush.

    A hook may raise (the engine raises ``TerminationSignal`` when flow runs are live, so
    they end Crashed and the process exits through its normal path, ``atexit`` included);
    a second SIGTERM skips the hooks and terminates at once, after flushing. ``first``
    puts it before the hooks already registered (one that must act before the engine's).
    """
    if hook not in _termination_hooks:
        if first:
            _termination_hooks.insert(0, hook)
        else:
            _termination_hooks.append(hook)


def _on_sigterm(signum: int, frame: Any) -> None:
    global _terminating
    if not _terminating:
        _terminating = True
        for hook in _termination_hooks:
            hook()
    # Make what was published durable, then let the signal do what it would have done. No
    # lock is taken: the signal may have interrupted a holder of one.
    try:
        get_bus().flush(timeout=EXIT_TIMEOUT)
        for spec in _stop_order(list(_running)):
            entry = _running.get(spec)
            if entry is not None and spec.on_sigterm is not None:
                spec.on_sigterm(entry.instance)
    except Exception:
        logger.exception("flushing headwater's services on SIGTERM failed")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def _stop_at_exit() -> None:
    try:
        stop_all(EXIT_TIMEOUT)
    except Exception:
        logger.exception("stopping headwater's services at exit failed")


def _reset_after_fork() -> None:
    # The parent's services and the loop they ran on do not exist in the child.
    global _lock
    _running.clear()
    _remembered.clear()
    _lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
