"""Futures: handles on submitted task runs, usable from sync and async code alike.

Beyond Prefect, a future is awaitable (``await task.submit(x)``) and ``as_completed``
supports ``async for``. A future holds its task run's final state only while the user
holds the future: the engine keeps no registry of results.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from headwater.engine.asyncutils import close_private_loop
from headwater.engine.states import State
from headwater.exceptions import FutureBlockedLoopError

if TYPE_CHECKING:
    from headwater.engine.runs import TaskRun

__all__ = [
    "DeferredStart",
    "DoneAndNotDoneFutures",
    "HeadwaterFuture",
    "HeadwaterFutureList",
    "PrefectFuture",
    "PrefectFutureList",
    "as_completed",
    "resolve_futures_to_states",
    "wait",
]

R = TypeVar("R")


class HeadwaterFuture(Generic[R]):
    """The eventual outcome of a submitted task run.

    Attributes:
        task_run_id: the id of the task run this future follows.
    """

    __slots__ = (
        "__weakref__",
        "_callbacks",
        "_done",
        "_final",
        "_lock",
        "_owner_loop",
        "_start",
        "_waiters",
        "task_run",
    )

    def __init__(self, task_run: TaskRun, owner_loop: asyncio.AbstractEventLoop | None = None):
        self.task_run = task_run
        self._final: State[R] | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[HeadwaterFuture[R]], Any]] = []
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        # the loop that runs this task (async tasks of async flows): blocking on it deadlocks
        self._owner_loop = owner_loop
        # how to run it elsewhere if its result is demanded synchronously before it starts
        self._start: DeferredStart | None = None

    @property
    def task_run_id(self) -> uuid.UUID:
        return self.task_run.id

    @property
    def state(self) -> State[R]:
        """The task run's current state (its final state once done)."""
        if self._final is not None:
            return self._final
        state = self.task_run.state
        assert state is not None, "a submitted task run always has a state"
        return state

    def done(self) -> bool:
        return self._done.is_set()

    # -- completion (engine side) ------------------------------------------------------------
    def _finish(self, state: State[R]) -> None:
        with self._lock:
            self._final = state
            self._done.set()
            waiters, self._waiters = self._waiters, []
            callbacks, self._callbacks = self._callbacks, []
        for loop, waiter in waiters:
            try:
                loop.call_soon_threadsafe(_resolve_waiter, waiter)
            except RuntimeError:
                pass  # that loop has closed; nobody is waiting there any more
        for callback in callbacks:
            _run_callback(callback, self)

    # -- waiting (user side) -----------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> None:
        """Block until the task run is done, or until ``timeout`` seconds pass (no error)."""
        if not self._done.is_set():
            self._guard_loop("future.wait()")
            self._done.wait(timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> R:
        """The task's return value; blocks until it is done.

        Raises:
            TimeoutError: the task run is still unfinished after ``timeout`` seconds.
            FutureBlockedLoopError: called on the event loop that runs the task; use
                ``await future`` there.
            Exception: the task's own exception, with ``raise_on_failure``.
        """
        if not self._done.is_set():
            start = self._start
            if start is not None and self._on_owner_loop() and start.take():
                start.run_elsewhere(self, timeout)  # not started yet: run it off this loop
            else:
                self._guard_loop("future.result()")
            if not self._done.wait(timeout):
                raise TimeoutError(
                    f"Task run {self.task_run.name!r} did not finish within {timeout} seconds"
                )
        assert self._final is not None
        return self._final.result_now(raise_on_failure=raise_on_failure)  # type: ignore[no-any-return]

    async def wait_async(self, timeout: float | None = None) -> None:
        """Wait without blocking the event loop."""
        if self._done.is_set():
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._done.is_set():
                return
            self._waiters.append((loop, waiter))
        try:
            if timeout is None:
                await waiter
            else:
                await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except asyncio.TimeoutError:
            return

    async def aresult(self, timeout: float | None = None, raise_on_failure: bool = True) -> R:
        """Async twin of :meth:`result`."""
        await self.wait_async(timeout)
        if not self._done.is_set():
            raise TimeoutError(
                f"Task run {self.task_run.name!r} did not finish within {timeout} seconds"
            )
        assert self._final is not None
        return self._final.result_now(raise_on_failure=raise_on_failure)  # type: ignore[no-any-return]

    def __await__(self) -> Generator[Any, None, R]:
        return self.aresult().__await__()

    def add_done_callback(self, fn: Callable[[HeadwaterFuture[R]], Any]) -> None:
        """Call ``fn(future)`` once the task run is done (right away if it already is)."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(fn)
                return
        _run_callback(fn, self)

    def _on_owner_loop(self) -> bool:
        owner = self._owner_loop
        if owner is None:
            return False
        try:
            return asyncio.get_running_loop() is owner
        except RuntimeError:
            return False

    def _guard_loop(
        self, method: str, instead: str = "`await future` or `await future.aresult()`"
    ) -> None:
        owner = self._owner_loop
        if owner is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            return
        if running is owner:
            raise FutureBlockedLoopError(
                f"{method} would block the event loop that runs task run "
                f"{self.task_run.name!r}, so it could never finish; in async code use {instead}"
            )

    def __repr__(self) -> str:
        return f"HeadwaterFuture(task_run={self.task_run.name!r}, state={self.state.name})"


class DeferredStart:
    """An async task submitted to its flow's loop, not started yet: whoever takes it runs it.

    Normally the flow's loop takes it when the task's turn comes. A blocking
    ``future.result()`` on that loop before then (Prefect code does this) takes it instead
    and runs the task on a loop of its own in a worker thread, waiting there; once the task
    has started on the flow's loop, blocking it would deadlock and is refused.
    """

    __slots__ = ("_context", "_lock", "_run", "_taken")

    def __init__(self, run: Callable[[], Any], context: contextvars.Context) -> None:
        self._run = run  # runs the task to its end in the calling thread (its own loop)
        self._context = context
        self._lock = threading.Lock()
        self._taken = False

    def _run_and_close(self) -> None:
        try:
            self._run()
        finally:
            close_private_loop()

    def take(self) -> bool:
        with self._lock:
            if self._taken:
                return False
            self._taken = True
            return True

    def run_elsewhere(self, future: HeadwaterFuture[Any], timeout: float | None) -> None:
        thread = threading.Thread(
            target=self._context.run,
            args=(self._run_and_close,),
            name=f"headwater-task {future.task_run.name}",
            daemon=True,
        )
        thread.start()
        thread.join(timeout)


def _resolve_waiter(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _run_callback(fn: Callable[[Any], Any], future: HeadwaterFuture[Any]) -> None:
    try:
        fn(future)
    except Exception:
        import logging

        logging.getLogger("headwater.futures").exception(
            "A done callback of task run %r raised", future.task_run.name
        )


class HeadwaterFutureList(list[HeadwaterFuture[R]]):
    """The futures ``.map()`` returns, with list-wide ``wait`` and ``result``."""

    def wait(self, timeout: float | None = None) -> None:
        wait(self, timeout=timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> list[R]:
        """Every result, in order; raises the first failure as results come in."""
        deadline = None if timeout is None else time.monotonic() + timeout
        results: list[R] = []
        for future in self:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            results.append(future.result(timeout=remaining, raise_on_failure=raise_on_failure))
        return results

    async def aresult(self, raise_on_failure: bool = True) -> list[R]:
        return [await future.aresult(raise_on_failure=raise_on_failure) for future in self]

    def __await__(self) -> Generator[Any, None, list[R]]:
        return self.aresult().__await__()


# Prefect's names, kept so that migrated code (type hints, isinstance checks) works unchanged.
PrefectFuture = HeadwaterFuture
PrefectFutureList = HeadwaterFutureList


class DoneAndNotDoneFutures(NamedTuple):
    done: set[HeadwaterFuture[Any]]
    not_done: set[HeadwaterFuture[Any]]


def wait(
    futures: Iterable[HeadwaterFuture[Any]], timeout: float | None = None
) -> DoneAndNotDoneFutures:
    """Wait for the futures to finish, at most ``timeout`` seconds in total."""
    pending = list(futures)
    deadline = None if timeout is None else time.monotonic() + timeout
    for future in pending:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        future.wait(remaining)
    done = {future for future in pending if future.done()}
    return DoneAndNotDoneFutures(done, {future for future in pending if not future.done()})


class as_completed(Generic[R]):
    """Yield futures as they finish: ``for f in as_completed(fs)`` or ``async for``.

    Finished futures come first. A future is released as soon as it has been yielded, so
    consuming a long map this way keeps memory flat.

    Raises:
        ValueError: a negative timeout.
        TimeoutError: some futures are unfinished when the timeout passes (the message
            says how many).
    """

    def __init__(self, futures: Iterable[HeadwaterFuture[R]], timeout: float | None = None):
        if timeout is not None and timeout < 0:
            raise ValueError(f"as_completed() timeout must not be negative, got {timeout}")
        # the same future passed twice is yielded once, as in Prefect
        self._futures = list(dict.fromkeys(futures))
        self._timeout = timeout

    def __iter__(self) -> Iterator[HeadwaterFuture[R]]:
        for future in self._futures:
            if not future.done():
                # waiting here on the loop that runs the task would never end
                future._guard_loop("iterating as_completed()", "`async for` over as_completed()")
        futures, self._futures = self._futures, []
        total = len(futures)
        finished: queue.SimpleQueue[HeadwaterFuture[R]] = queue.SimpleQueue()
        for future in futures:
            future.add_done_callback(finished.put)
        del futures
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        for yielded in range(total):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                future = finished.get(timeout=remaining)
            except queue.Empty:
                raise TimeoutError(f"{total - yielded} (of {total}) futures unfinished") from None
            yield future
            del future

    async def __aiter__(self) -> AsyncIterator[HeadwaterFuture[R]]:
        futures, self._futures = self._futures, []
        total = len(futures)
        loop = asyncio.get_running_loop()
        finished: asyncio.Queue[HeadwaterFuture[R]] = asyncio.Queue()

        def deliver(future: HeadwaterFuture[R]) -> None:
            try:
                loop.call_soon_threadsafe(finished.put_nowait, future)
            except RuntimeError:
                pass

        for future in futures:
            future.add_done_callback(deliver)
        del futures
        deadline = None if self._timeout is None else loop.time() + self._timeout
        for yielded in range(total):
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                future = await asyncio.wait_for(finished.get(), remaining)
            except asyncio.TimeoutError:
                raise TimeoutError(f"{total - yielded} (of {total}) futures unfinished") from None
            yield future
            del future


def resolve_futures_to_states(value: Any) -> Any:
    """Replace every future inside ``value`` (lists, tuples, sets, dicts) by its final state."""
    if isinstance(value, HeadwaterFuture):
        value.wait()
        return value.state
    if isinstance(value, (list, tuple, set, frozenset)) and value:
        resolved = [resolve_futures_to_states(item) for item in value]
        if all(new is old for new, old in zip(resolved, value, strict=True)):
            return value
        return type(value)(resolved) if not isinstance(value, list) else resolved
    if isinstance(value, dict) and value:
        return {key: resolve_futures_to_states(item) for key, item in value.items()}
    return value
