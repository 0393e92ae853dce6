"""Timeouts for sync and async runs.

Async code is cancelled at its next ``await`` through an anyio cancel scope. Sync code
cannot be cancelled cooperatively, so a single watchdog thread raises an exception in the
running thread when its deadline passes (``PyThreadState_SetAsyncExc``): it lands at the
next Python bytecode, which interrupts loops and ``time.sleep``-style waits between
calls, but not a single long C call; that limit is Python's, and Prefect shares it.
"""

from __future__ import annotations

import atexit
import ctypes
import heapq
import itertools
import threading
import time
from types import TracebackType

__all__ = ["SyncDeadline", "TimeoutInterrupt", "interrupt_thread", "withdraw_interrupt"]


class TimeoutInterrupt(BaseException):
    """Injected into a thread whose run passed its deadline.

    A BaseException so that a user's ``except Exception`` does not swallow it.
    """


_set_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)
# the same C function typed to accept NULL, which withdraws a queued exception
_clear_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)


class _Watchdog:
    """One daemon thread that fires deadlines in order; started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, SyncDeadline]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def add(self, deadline: SyncDeadline) -> None:
        with self._lock:
            heapq.heappush(self._heap, (deadline.deadline, next(self._order), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._stopping = False
                self._thread = threading.Thread(
                    target=self._run, name="headwater-timeouts", daemon=True
                )
                self._thread.start()
            self._wakeup.notify()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._wakeup.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=5)

    def _run(self) -> None:
        with self._lock:
            while not self._stopping:
                now = time.monotonic()
                while self._heap and (self._heap[0][2].done or self._heap[0][0] <= now):
                    _, _, entry = heapq.heappop(self._heap)
                    if not entry.done:
                        entry.fired = True
                        _set_async_exc(entry.thread_id, TimeoutInterrupt)
                wait = self._heap[0][0] - now if self._heap else None
                self._wakeup.wait(wait)

    @property
    def lock(self) -> threading.Lock:
        return self._lock


_watchdog = _Watchdog()


class SyncDeadline:
    """Context manager that interrupts the current thread after ``seconds``.

    Usage: ``with SyncDeadline(5) as guard: work()``; a :class:`TimeoutInterrupt` leaves
    the block when the time is up, and ``guard.fired`` tells the caller it was a timeout.
    """

    __slots__ = ("deadline", "done", "fired", "seconds", "thread_id")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = 0.0
        self.thread_id = 0
        self.done = False
        self.fired = False

    def __enter__(self) -> SyncDeadline:
        self.thread_id = threading.get_ident()
        self.deadline = time.monotonic() + self.seconds
        _watchdog.add(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with _watchdog.lock:
            self.done = True
            fired = self.fired
        if fired and exc_type is not TimeoutInterrupt:
            # queued but not delivered (the block ended, or raised something else first):
            # withdraw it so it cannot strike later, outside this block
            _clear_async_exc(self.thread_id, None)
            if exc_type is None:
                raise TimeoutInterrupt()


def interrupt_thread(thread_id: int, exception: type[BaseException]) -> None:
    """Raise ``exception`` in another thread at its next Python bytecode."""
    _set_async_exc(thread_id, exception)


def withdraw_interrupt(thread_id: int) -> None:
    """Take back an interrupt queued for ``thread_id`` and not yet delivered."""
    _clear_async_exc(thread_id, None)


def stop_watchdog() -> None:
    """Stop the watchdog thread (at interpreter exit)."""
    _watchdog.stop()


atexit.register(stop_watchdog)
