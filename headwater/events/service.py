"""The service loop: headwater's own event loop, in a daemon thread, for background consumers.

Persistence, the reactor, notifications and the feed must run whether the user's code is sync
or async and whatever loop it owns (DESIGN.md, "Execution model"). They live in one anyio task
group on one loop in a daemon thread named ``headwater-services``, started on first need.

The loop knows nothing of the bus: it hosts tasks. At interpreter exit an ``atexit`` handler
asks hosted tasks (bus consumers) to drain, cancels the rest and joins the thread, within
:data:`EXIT_TIMEOUT` seconds; the bus's own exit handler, registered later, runs first and
flushes its lossless subscribers. The thread is a daemon on purpose: Python joins non-daemon threads
*before* running ``atexit`` handlers, so a non-daemon service thread would never be told to stop.
A forked child starts with a fresh, not yet started service loop.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import anyio
import anyio.abc

__all__ = ["ServiceLoop", "get_service_loop", "EXIT_TIMEOUT"]

logger = logging.getLogger("headwater.events")

EXIT_TIMEOUT = 10.0
"""Seconds the exit handler gives lossless consumers to catch up before stopping anyway."""

T = TypeVar("T")


def _cancel_first(scopes: list[anyio.CancelScope]) -> None:
    if scopes:
        scopes[0].cancel()


class ServiceLoop:
    """An event loop in a daemon thread hosting headwater's long-lived background tasks.

    Every method is safe to call from any thread; those that submit work start the loop if it
    is not running. After :meth:`stop` it may be started again (except at interpreter exit).
    """

    def __init__(self, name: str = "headwater-services") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._stop_event: anyio.Event | None = None
        self._stopping = False
        self._shut_down = False
        self._drain_timeout = 0.0
        # hosted task name -> how to ask it to finish; drained at stop before cancelling
        self._hosted: dict[object, Callable[[], None]] = {}
        self._drained: anyio.Event | None = None

    @property
    def thread(self) -> threading.Thread | None:
        """The loop's thread while running, else None."""
        return self._thread

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The running loop, else None."""
        return self._loop if self._thread is not None else None

    @property
    def is_running(self) -> bool:
        return self._thread is not None and not self._stopping

    def start(self) -> None:
        """Start the thread and its loop unless running; return once it accepts work.

        Raises:
            RuntimeError: the loop is stopping, or the interpreter is exiting.
        """
        with self._lock:
            if self._shut_down:
                raise RuntimeError("the headwater service loop was shut down at interpreter exit")
            if self._stopping:
                raise RuntimeError("the headwater service loop is stopping")
            if self._thread is not None:
                return
            ready = threading.Event()
            failure: list[BaseException] = []
            thread = threading.Thread(
                target=self._thread_main, args=(ready, failure), name=self._name, daemon=True
            )
            thread.start()
            ready.wait()
            if failure:
                raise RuntimeError("the headwater service loop failed to start") from failure[0]
            self._thread = thread

    def start_soon(
        self, async_fn: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None
    ) -> None:
        """Run ``async_fn(*args)`` as a task of the service task group.

        An exception it raises is logged and does not disturb the other tasks.
        """
        self.start()
        task_group, loop = self._task_group, self._loop
        assert task_group is not None and loop is not None
        label: str = name or str(getattr(async_fn, "__qualname__", async_fn))
        if threading.current_thread() is self._thread:
            task_group.start_soon(self._guarded, async_fn, args, label, name=label)
        else:
            loop.call_soon_threadsafe(
                lambda: task_group.start_soon(self._guarded, async_fn, args, label, name=label)
            )

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn(*args)`` on the service loop, soon."""
        self.start()
        assert self._loop is not None
        self._loop.call_soon_threadsafe(fn, *args)

    def run_coroutine(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the service loop and wait for its result, from another thread.

        Raises:
            TimeoutError: it did not finish within ``timeout`` seconds (it is then cancelled).
            RuntimeError: called from the service loop's own thread, where it would deadlock.
            Exception: whatever the coroutine raised.
        """
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("run_coroutine() would deadlock on the service loop; await instead")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        scopes: list[anyio.CancelScope] = []

        async def runner() -> None:
            if not future.set_running_or_notify_cancel():
                coro.close()
                return
            with anyio.CancelScope() as scope:
                scopes.append(scope)
                try:
                    future.set_result(await coro)
                except Exception as exc:
                    future.set_exception(exc)
                    return
                except BaseException:
                    future.set_exception(RuntimeError("cancelled on the service loop"))
                    raise
            if not future.done():
                future.set_exception(RuntimeError("cancelled on the service loop"))

        try:
            self.start_soon(runner, name=f"run_coroutine {getattr(coro, '__qualname__', coro)}")
        except RuntimeError:
            coro.close()  # never started: do not leave a never-awaited coroutine behind
            raise
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if not future.cancel():
                self.call_soon(_cancel_first, scopes)
            raise TimeoutError(f"coroutine did not finish within {timeout} s") from None

    def host(
        self, async_fn: Callable[[], Awaitable[Any]], *, stop: Callable[[], None], name: str
    ) -> None:
        """Run ``async_fn()`` here until it returns; at :meth:`stop`, call ``stop()`` first.

        ``stop`` asks the task to finish what it holds (a consumer stops taking new events and
        handles those buffered); the loop then waits for it, up to the drain timeout, before
        cancelling what is left.
        """
        self.start()
        token = object()
        self._hosted[token] = stop
        self.start_soon(self._host, async_fn, token, name=name)

    async def _host(self, async_fn: Callable[[], Awaitable[Any]], token: object) -> None:
        try:
            await async_fn()
        finally:
            self._hosted.pop(token, None)
            if self._drained is not None and not self._hosted:
                self._drained.set()

    def stop(self, timeout: float = EXIT_TIMEOUT) -> bool:
        """Let callback consumers drain their buffers, cancel every task and join the thread.

        Hosted tasks (bus consumers) are asked to finish at once; they get up to
        ``timeout`` seconds to handle what is buffered, then everything still running is
        cancelled. Returns within about ``timeout`` + 1 seconds.

        Returns:
            True if the thread has ended (or never started).

        Raises:
            RuntimeError: called from the service loop's own thread.
        """
        if threading.current_thread() is self._thread:
            raise RuntimeError("the service loop cannot stop itself; call stop() from elsewhere")
        with self._lock:
            thread = self._thread
            if thread is None:
                return True
            if not self._stopping:
                self._stopping = True
                self._drain_timeout = max(0.0, timeout)
                assert self._loop is not None and self._stop_event is not None
                self._loop.call_soon_threadsafe(self._stop_event.set)
        thread.join(max(0.0, timeout) + 1.0)
        if thread.is_alive():
            return False
        with self._lock:
            if self._thread is thread:
                self._thread = self._loop = self._task_group = self._stop_event = None
                self._stopping = False
        return True

    def _thread_main(self, ready: threading.Event, failure: list[BaseException]) -> None:
        try:
            anyio.run(self._main, ready, backend="asyncio")
        except BaseException as exc:
            if not ready.is_set():
                failure.append(exc)
            else:
                logger.exception("the headwater service loop crashed")
        finally:
            ready.set()

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = anyio.Event()
        async with anyio.create_task_group() as task_group:
            self._task_group = task_group
            ready.set()
            await self._stop_event.wait()
            self._drained = anyio.Event()
            for stop in list(self._hosted.values()):
                stop()
            if self._hosted:
                with anyio.move_on_after(self._drain_timeout):
                    await self._drained.wait()
            task_group.cancel_scope.cancel()
        self._drained = None

    async def _guarded(
        self, async_fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], label: str
    ) -> None:
        try:
            await async_fn(*args)
        except asyncio.CancelledError:
            raise
        except BaseException:
            # One failing service must not cancel its siblings through the task group.
            logger.exception("headwater service task %r crashed", label)


_service: ServiceLoop | None = None
_service_lock = threading.Lock()


def get_service_loop() -> ServiceLoop:
    """The process-wide service loop object (not started until something needs it)."""
    service = _service
    if service is None:
        service = _create_service()
    return service


def _create_service() -> ServiceLoop:
    global _service
    with _service_lock:
        if _service is None:
            _service = ServiceLoop()
        return _service


def _shutdown_at_exit() -> None:
    service = _service
    if service is None:
        return
    with service._lock:
        service._shut_down = True
    if service.thread is None:
        return
    if not service.stop(timeout=EXIT_TIMEOUT):
        logger.warning("the headwater service loop did not stop in time")


def _reset_after_fork() -> None:
    # The parent's service thread does not exist in the child; start afresh when needed.
    global _service, _service_lock
    _service = None
    _service_lock = threading.Lock()


atexit.register(_shutdown_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
