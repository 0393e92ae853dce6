"""The in-process event bus: one synchronous ``publish`` feeding bounded, per-subscriber buffers.

Every state change reaches persistence, hooks, triggers and observers through here (DESIGN.md,
"The spine"). ``publish`` appends the item, as it came, to each subscriber's ``deque`` and
returns; subscribers materialise it (``item.to_event()``) on their own side, off the engine's path.

Two kinds of subscriber:

- lossless (persistence): a full buffer makes the publisher wait (``threading.Condition``)
  until the consumer makes room. The wait is skipped, and the item appended past the bound,
  when the publishing thread itself consumes a lossless subscription (the service loop's own
  consumers publishing, a loop that both runs flows and reads the bus): waiting there could
  deadlock. This *soft bound* is exceeded only by what such a thread publishes while a
  consumer is behind. A closed subscription, or one whose consumer's thread or loop is gone,
  never makes anyone wait.
- lossy (observers): on overflow the new item is dropped and counted; the consumer receives a
  :class:`GapNotice` at the place the items went missing. The publisher never waits.

Each buffer is a FIFO, so for one resource every subscriber sees the publish order. Consumers
are asyncio tasks on any loop in any thread; a publisher wakes one with ``call_soon_threadsafe``
only when it is actually waiting.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from headwater.events.buffer import Barrier, Buffer, GapNotice
from headwater.events.consumer import Consumer
from headwater.events.schema import EventSource
from headwater.events.subscription import Subscription

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "EventBus",
    "Subscription",
    "GapNotice",
    "ResourceWatch",
    "get_bus",
    "DEFAULT_BUFFER_SIZE",
]

DEFAULT_BUFFER_SIZE = 1024
EXIT_FLUSH_TIMEOUT = 10.0

logger = logging.getLogger("headwater.events")


class ResourceWatch:
    """An inline inbox of one resource's items, filled synchronously by ``publish``.

    The engine watches a run's resource so that the run's state hooks react to the run's own
    events right after publishing them, on the same path as everyone else (rules 1 and 4). Its
    owner drains it after each publish, so it is not bounded; items arrive as published
    (compact records are not materialised).
    """

    __slots__ = ("_bus", "_inbox", "resource_id")

    def __init__(self, bus: EventBus, resource_id: str) -> None:
        self.resource_id = resource_id
        self._inbox: deque[EventSource] = deque()
        self._bus: EventBus | None = bus

    def drain(self) -> list[EventSource]:
        """Return and remove everything received so far, oldest first."""
        inbox = self._inbox
        drained: list[EventSource] = []
        while inbox:
            drained.append(inbox.popleft())
        return drained

    def close(self) -> None:
        """Stop receiving; what is already in the inbox stays drainable."""
        bus, self._bus = self._bus, None
        if bus is not None:
            bus._unwatch(self)

    def __enter__(self) -> ResourceWatch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class EventBus:
    """The in-process bus: ``publish`` from anywhere, subscribe from any loop.

    Use :func:`get_bus` for the process-wide instance; separate instances are for tests.
    Subscriber lists are immutable tuples replaced under a lock, so ``publish`` reads them
    without locking while other threads subscribe and unsubscribe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffers: tuple[Buffer, ...] = ()
        self._lossless: tuple[Buffer, ...] = ()
        self._watches: dict[str, tuple[ResourceWatch, ...]] = {}
        self._has_subscribers = False
        self._names = itertools.count(1)
        self._prune_needed = False

    @property
    def has_subscribers(self) -> bool:
        """True when ``publish`` has anyone to deliver to (subscription, consumer or watch)."""
        return self._has_subscribers

    @property
    def subscriber_count(self) -> int:
        """How many subscriptions and consumers are attached now (watches not counted)."""
        return len(self._buffers)

    def saturated(self) -> bool:
        """True when a lossless subscriber's buffer is full, so ``publish`` would wait now.

        For publishers that must not block their thread (the server's ingest socket shares its
        event loop with every observer): they yield until this is False, then publish. Advisory
        only: another thread may fill the buffer between the check and the publish.
        """
        return any(len(buffer.items) >= buffer.maxsize for buffer in self._lossless)

    def publish(self, item: EventSource) -> None:
        """Hand ``item`` to every subscriber and every watch of its resource.

        Synchronous and cheap, callable from any thread and any event loop. Returns at once
        unless a lossless subscriber's buffer is full, in which case it waits for room (see
        the module docstring for the soft bound that prevents deadlocks).

        Args:
            item: an :class:`Event` or a compact record with ``resource_id`` and ``to_event()``;
                it is passed on as it is and materialised by each subscriber.
        """
        for buffer in self._buffers:
            items = buffer.items
            if len(items) < buffer.maxsize:
                items.append(item)
                waiter = buffer.waiter
                if waiter is not None and not waiter.fired and len(items) >= waiter.threshold:
                    waiter.fire()
            else:
                buffer.put_full(item)
        if self._watches:
            watches = self._watches.get(item.resource_id)
            if watches:
                for watch in watches:
                    watch._inbox.append(item)

    def subscribe(
        self,
        *,
        lossless: bool = False,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        name: str | None = None,
        materialise: bool = True,
    ) -> Subscription:
        """Start buffering events for a new subscriber, from now on.

        Args:
            lossless: True for consumers that must see everything (the publisher waits when
                the buffer is full); False for observers (overflow yields a GapNotice).
            materialise: False delivers items exactly as published (an Event or a compact
                record with ``to_event()``/``event_json()``), for consumers that can use
                the compact form directly and skip building Events.
            buffer_size: the buffer's bound, in items.
            name: shown in logs; defaults to ``subscription-<n>``.
        """
        return Subscription(self._add(lossless, buffer_size, name, None, materialise))

    def add_consumer(
        self,
        callback: Callable[[Any], Any],
        *,
        lossless: bool = True,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        name: str | None = None,
    ) -> Consumer:
        """Run ``callback`` on the service loop for every event, one at a time.

        ``callback`` is a sync or async function taking an :class:`Event` (or a
        :class:`GapNotice`, when not lossless). Exceptions it raises are logged on the
        ``headwater.events`` logger with the consumer's name and never reach the publisher;
        the consumer keeps receiving. Starts the service loop if needed.

        Returns:
            A handle whose ``close()`` detaches the consumer.
        """
        from headwater.events.service import get_service_loop  # not needed by most programs

        name = name or getattr(callback, "__qualname__", None) or repr(callback)
        service = get_service_loop()
        service.start()
        # The consumer's thread is known now: publishers on it must never wait for it.
        buffer = self._add(lossless, buffer_size, name, service.thread)
        consumer = Consumer(Subscription(buffer), callback, name)
        service.host(consumer.run, stop=consumer.subscription.detach, name=f"consumer {name}")
        return consumer

    def watch(self, resource_id: str) -> ResourceWatch:
        """Collect, synchronously, every item published for ``resource_id`` until closed."""
        watch = ResourceWatch(self, resource_id)
        with self._lock:
            watches = self._watches.copy()
            watches[resource_id] = (*watches.get(resource_id, ()), watch)
            self._watches = watches
            self._has_subscribers = True
        return watch

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every lossless subscriber has processed what was published before.

        Free when there is no lossless subscriber. A subscriber consumed on the calling thread
        is skipped (waiting for it would deadlock), and makes the result False.

        Returns:
            True if everything was processed in time; False on timeout, on skip, or when a
            consumer reported some of those items as not processed (``ack(failed=True)``).
        """
        buffers = self._lossless
        if not buffers:
            return True
        barriers, complete = self._put_barriers(buffers, threading.current_thread(), None)
        deadline = None if timeout is None else time.monotonic() + timeout
        for barrier in barriers:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not barrier.wait(left) or barrier.failed:
                complete = False
        return complete

    async def aflush(self, timeout: float | None = None) -> bool:
        """Async :meth:`flush`: wait without blocking the running loop.

        The subscriber the calling task itself consumes (e.g. from inside a consumer's
        callback) is skipped and makes the result False.
        """
        buffers = self._lossless
        if not buffers:
            return True
        task = asyncio.current_task()
        barriers, complete = self._put_barriers(buffers, None, task)
        if barriers:
            loop = asyncio.get_running_loop()
            futures = [barrier.future(loop) for barrier in barriers]
            _, pending = await asyncio.wait(futures, timeout=timeout)
            for future in pending:
                future.cancel()
                complete = False
            if any(barrier.failed for barrier in barriers):
                complete = False
        return complete

    def _put_barriers(
        self,
        buffers: tuple[Buffer, ...],
        thread: threading.Thread | None,
        task: asyncio.Task[Any] | None,
    ) -> tuple[list[Barrier], bool]:
        barriers: list[Barrier] = []
        complete = True
        for buffer in buffers:
            if (thread is not None and buffer.consumer_thread is thread) or (
                task is not None and buffer.consumer_task is task
            ):
                complete = False
                continue
            if buffer.gone():
                buffer.close(reason="its consumer's thread or event loop is gone")
                continue
            barrier = Barrier(floor=buffer.acked)
            buffer.put_barrier(barrier)
            barriers.append(barrier)
        return barriers, complete

    # -- registry (copy-on-write) --------------------------------------------------------

    def _add(
        self,
        lossless: bool,
        buffer_size: int,
        name: str | None,
        consumer_thread: threading.Thread | None,
        materialise: bool = True,
    ) -> Buffer:
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be at least 1, got {buffer_size}")
        buffer = Buffer(
            self,
            lossless,
            buffer_size,
            name or f"subscription-{next(self._names)}",
            materialise,
        )
        if consumer_thread is not None:
            buffer.consumer_thread = consumer_thread
            buffer.consumer_loop = None
        with self._lock:
            self._set_buffers((*self._buffers, buffer))
        return buffer

    def _remove(self, buffer: Buffer) -> None:
        with self._lock:
            self._set_buffers(tuple(b for b in self._buffers if b is not buffer))

    def _prune_later(self) -> None:
        # Called from finalizers: never wait for the lock, the GC may hold it in this thread.
        self._prune_needed = True
        if self._lock.acquire(blocking=False):
            try:
                self._set_buffers(self._buffers)
            finally:
                self._lock.release()

    def _set_buffers(self, buffers: tuple[Buffer, ...]) -> None:
        # Caller holds self._lock.
        if self._prune_needed:
            self._prune_needed = False
            buffers = tuple(b for b in buffers if not b.closed)
        self._buffers = buffers
        self._lossless = tuple(b for b in buffers if b.lossless)
        self._has_subscribers = bool(buffers or self._watches)

    def _unwatch(self, watch: ResourceWatch) -> None:
        with self._lock:
            watches = self._watches.copy()
            remaining = tuple(w for w in watches.get(watch.resource_id, ()) if w is not watch)
            if remaining:
                watches[watch.resource_id] = remaining
            else:
                watches.pop(watch.resource_id, None)
            self._watches = watches
            self._has_subscribers = bool(self._buffers or watches)

    def _consumes_lossless(self, thread: threading.Thread) -> bool:
        """Whether ``thread`` consumes a lossless subscription (so it must never wait)."""
        # Threads, not idents: an ident is reused once its thread has ended.
        return any(buffer.consumer_thread is thread for buffer in self._lossless)


_bus: EventBus | None = None
_bus_lock = threading.Lock()


def get_bus() -> EventBus:
    """The process-wide bus, created on first use (and afresh in a forked child)."""
    bus = _bus
    if bus is None:
        bus = _create_bus()
    return bus


def _create_bus() -> EventBus:
    global _bus
    with _bus_lock:
        if _bus is None:
            _bus = EventBus()
        return _bus


def _flush_at_exit() -> None:
    # Registered after the service loop's handler (this module imports it), so it runs
    # first: lossless consumers catch up before the loop hosting them stops.
    bus = _bus
    if bus is None or not bus.has_subscribers:
        return
    try:
        if not bus.flush(timeout=EXIT_FLUSH_TIMEOUT):
            logger.warning(
                "exiting before every lossless event consumer caught up (waited %.0f s)",
                EXIT_FLUSH_TIMEOUT,
            )
    except Exception:
        logger.exception("flushing the event bus at exit failed")


def _reset_after_fork() -> None:
    # The parent's subscribers and their consumer threads do not exist in the child.
    global _bus, _bus_lock
    _bus = None
    _bus_lock = threading.Lock()


atexit.register(_flush_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
