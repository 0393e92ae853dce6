"""What this process knows about the slots it holds and waits for.

- :class:`SlotSignals` wakes waiters in this process the moment a slot is given back here,
  whatever thread or event loop they wait on (Prefect's waiters sleep out a retry hint even
  when the slot they want was freed next door). Waiters on other processes learn of it by
  polling, with backoff.
- :class:`LeaseKeeper` renews the leases this process holds, from one task on headwater's
  service loop, so that slots of a process that dies are released when its leases expire
  while a live holder never loses them, however long its block runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable

import anyio

from headwater.exceptions import StorageError

__all__ = ["LeaseKeeper", "SlotSignals", "get_keeper", "get_signals"]

logger = logging.getLogger("headwater.concurrency")

_MIN_RENEW_INTERVAL = 0.05


class SlotSignals:
    """A generation counter that waiters watch, bumped whenever slots may have freed up.

    A waiter reads :attr:`generation` before trying the database; if it then waits with that
    generation, a release that happened in between wakes it at once, so no wake-up is lost.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.generation = 0
        self._threads: set[threading.Event] = set()
        self._tasks: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def notify(self) -> None:
        """Wake every waiter of this process (slots were released, or limits changed)."""
        with self._lock:
            self.generation += 1
            threads, tasks = list(self._threads), list(self._tasks)
        for event in threads:
            event.set()
        for loop, waiter in tasks:
            try:
                loop.call_soon_threadsafe(waiter.set)
            except RuntimeError:
                pass  # that loop is closed: its waiter is gone with it

    def wait_sync(self, generation: int, timeout: float) -> None:
        """Block until :meth:`notify` after ``generation``, or ``timeout`` seconds."""
        event = threading.Event()
        with self._lock:
            if self.generation != generation:
                return
            self._threads.add(event)
        try:
            event.wait(timeout)
        finally:
            with self._lock:
                self._threads.discard(event)

    async def wait_async(self, generation: int, delay: float) -> None:
        """Wait, without blocking the loop, until :meth:`notify` or ``delay`` seconds."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            if self.generation != generation:
                return
            self._tasks.add(entry)
        try:
            with anyio.move_on_after(delay):
                await entry[1].wait()
        finally:
            with self._lock:
                self._tasks.discard(entry)


class _Kept:
    __slots__ = ("due", "duration", "on_lost")

    def __init__(self, duration: float, on_lost: Callable[[], None]) -> None:
        self.duration = duration
        self.due = time.monotonic() + _interval(duration)
        self.on_lost = on_lost


def _interval(duration: float) -> float:
    # Renew at a third of the lease: two renewals may fail before the slots are lost.
    return max(_MIN_RENEW_INTERVAL, duration / 3)


class LeaseKeeper:
    """Renews this process's leases from one task on the service loop while any is held."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leases: dict[str, _Kept] = {}
        self._running = False
        self._wake: anyio.Event | None = None
        self._next_wake = 0.0  # monotonic time the renewal task will next wake up

    def held(self) -> list[str]:
        """The ids of the leases being kept."""
        with self._lock:
            return list(self._leases)

    def keep(self, lease_id: str, duration: float, on_lost: Callable[[], None]) -> None:
        """Renew ``lease_id`` every ``duration / 3`` seconds until :meth:`drop`."""
        from headwater.events.service import get_service_loop

        kept = _Kept(duration, on_lost)
        with self._lock:
            self._leases[lease_id] = kept
            start = not self._running
            self._running = True
            # Waking the service loop costs a syscall and a thread switch: only when the new
            # lease is due before the renewal task would wake up anyway.
            wake = self._wake if kept.due < self._next_wake else None
        try:
            service = get_service_loop()
            if start:
                service.start_soon(self._run, name="concurrency lease renewal")
            elif wake is not None:
                service.call_soon(wake.set)  # the new lease may be due before the next wake-up
        except RuntimeError:
            # The service loop is gone (interpreter exit): the lease simply runs its course.
            with self._lock:
                self._running = False
            logger.debug("cannot renew concurrency lease %s: no service loop", lease_id)

    def drop(self, lease_id: str) -> None:
        with self._lock:
            self._leases.pop(lease_id, None)

    async def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    if not self._leases:
                        self._running = False
                        return
                    self._wake = wake = anyio.Event()
                    next_due = min(kept.due for kept in self._leases.values())
                    self._next_wake = next_due
                with anyio.move_on_after(max(0.0, next_due - time.monotonic())):
                    await wake.wait()
                await self._renew_due()
        except BaseException:
            with self._lock:
                self._running = False
            raise

    async def _renew_due(self) -> None:
        from headwater.concurrency.slots import renew
        from headwater.storage.sync_connection import get_sync_connection

        now = time.monotonic()
        with self._lock:
            due = [(lease_id, kept) for lease_id, kept in self._leases.items() if kept.due <= now]
        if not due:
            return
        pairs = [(lease_id, kept.duration) for lease_id, kept in due]

        def work() -> list[str]:
            with get_sync_connection().write() as connection:
                return renew(connection, pairs, time.time())

        try:
            lost = set(await anyio.to_thread.run_sync(work))
        except StorageError as exc:
            logger.warning("could not renew %d concurrency lease(s): %s", len(pairs), exc)
            for _, kept in due:
                kept.due = now + min(1.0, _interval(kept.duration))  # retry soon
            return
        for lease_id, kept in due:
            if lease_id in lost:
                self.drop(lease_id)
                kept.on_lost()
            else:
                kept.due = now + _interval(kept.duration)


_signals = SlotSignals()
_keeper = LeaseKeeper()


def get_signals() -> SlotSignals:
    return _signals


def get_keeper() -> LeaseKeeper:
    return _keeper


def _reset_after_fork() -> None:
    # The parent's leases and waiters are not the child's.
    global _signals, _keeper
    _signals = SlotSignals()
    _keeper = LeaseKeeper()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
