"""Per-subscriber buffers behind :mod:`headwater.events.bus`: the FIFO, its counters, wake-ups.

Private: :class:`~headwater.events.bus.EventBus` publishes into a :class:`Buffer` and a
:class:`~headwater.events.bus.Subscription` consumes from it. Publishers touch ``items``,
``maxsize`` and ``waiter`` on the fast path; the rest serves the slow path (a full buffer) and
the consumer's own thread. The module docstring of ``bus`` states the delivery guarantees.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from typing import Any, Protocol

import msgspec

from headwater.events.schema import Event, EventSource

__all__ = ["Barrier", "Buffer", "BufferOwner", "Delivered", "GapNotice"]

logger = logging.getLogger("headwater.events")


class BufferOwner(Protocol):
    """What a buffer asks of the bus that feeds it (the bus sits above this module)."""

    def _consumes_lossless(self, thread: threading.Thread) -> bool: ...

    def _remove(self, buffer: Buffer) -> None: ...

    def _prune_later(self) -> None: ...


_BLOCK_POLL = 0.25  # a waiting publisher re-checks this often that its consumer still exists
_BLOCK_WARN = 10.0  # ...and says so in the log this often


class GapNotice(msgspec.Struct, frozen=True):
    """Delivered to a lossy subscriber in place of ``dropped`` events it had no room for.

    It sits exactly where the events were lost: after everything delivered before them and
    before the next event, so an observer knows its view has a hole and how big it is.
    """

    dropped: int


Delivered = Event | GapNotice


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Waiter:
    """A consumer parked on its loop until the buffer holds ``threshold`` items."""

    __slots__ = ("fired", "future", "ident", "loop", "threshold")

    def __init__(self, loop: asyncio.AbstractEventLoop, threshold: int) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.threshold = threshold
        self.fired = False
        self.ident = threading.get_ident()  # the loop's thread, alive while we wait

    def fire(self) -> None:
        self.fired = True
        try:
            if threading.get_ident() == self.ident:
                # A publisher on the consumer's own loop: no self-pipe write needed.
                self.loop.call_soon(_set_done, self.future)
            else:
                self.loop.call_soon_threadsafe(_set_done, self.future)
        except RuntimeError:
            pass  # the loop is closed: the buffer is found dead by the next blocked publisher


class _Gap:
    """Placeholder for consecutive dropped items; sealed (under the lock) once taken."""

    __slots__ = ("dropped", "sealed")

    def __init__(self) -> None:
        self.dropped = 1
        self.sealed = False


class Barrier:
    """A flush marker: released once the consumer has acked everything ahead of it."""

    __slots__ = ("_event", "_futures", "_lock", "failed", "floor", "position")

    def __init__(self, floor: int = 0) -> None:
        self.position = 0
        # items acked before the flush began are not its concern; a failure reported after
        # ``floor`` and up to this barrier means something ahead of it was not processed
        self.floor = floor
        self.failed = False
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._futures: list[asyncio.Future[None]] = []

    def release(self) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            futures, self._futures = self._futures, []
        for future in futures:
            try:
                future.get_loop().call_soon_threadsafe(_set_done, future)
            except RuntimeError:
                pass  # the flusher's loop is gone; nobody is waiting any more

    def wait(self, timeout: float | None) -> bool:
        return self._event.wait(timeout)

    def future(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if not self._event.is_set():
                self._futures.append(future)
                return future
        future.set_result(None)
        return future


class Buffer:
    """One subscriber's bounded FIFO plus the counters its consumer keeps.

    Publishers touch ``items``, ``maxsize`` and ``waiter`` on the fast path; everything else
    is for the slow path (full buffer) or the consumer's own thread.
    """

    __slots__ = (
        "acked",
        "barriers",
        "blocked",
        "bus",
        "closed",
        "cond",
        "consumer_loop",
        "consumer_task",
        "consumer_thread",
        "delivered",
        "detached",
        "dropped",
        "flush_requested",
        "items",
        "materialise",
        "failed_upto",
        "lossless",
        "maxsize",
        "name",
        "waiter",
    )  # fmt: skip

    def __init__(
        self, bus: BufferOwner, lossless: bool, maxsize: int, name: str, materialise: bool = True
    ) -> None:
        self.items: deque[Any] = deque()
        # False: hand over items as published (persistence reads transition records directly)
        self.materialise = materialise
        # the ack count as of the last ack that reported items as not processed
        self.failed_upto = 0
        self.maxsize = maxsize
        self.lossless = lossless
        self.name = name
        self.bus = bus
        self.waiter: _Waiter | None = None
        self.cond = threading.Condition()
        self.closed = False
        self.detached = False  # no new items, but what is buffered is still delivered
        self.blocked = 0
        self.delivered = 0
        self.acked = 0
        self.barriers: deque[Barrier] = deque()
        self.flush_requested = False
        self.dropped = 0
        self.consumer_thread = threading.current_thread()
        try:
            self.consumer_loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self.consumer_loop = None
        self.consumer_task: asyncio.Task[Any] | None = None

    # -- publisher side ------------------------------------------------------------------

    def wake(self, force: bool = False) -> None:
        waiter = self.waiter
        if (
            waiter is not None
            and not waiter.fired
            and (force or len(self.items) >= waiter.threshold)
        ):
            waiter.fire()

    def put_full(self, item: EventSource) -> None:
        """Slow path of ``publish``: the buffer had no room."""
        if self.lossless:
            self._put_waiting(item)
            return
        items = self.items
        with self.cond:
            if len(items) < self.maxsize:
                items.append(item)  # the consumer made room meanwhile
            else:
                self.dropped += 1
                try:
                    last = items[-1]
                except IndexError:  # the consumer emptied it since the check
                    last = None
                if type(last) is _Gap and not last.sealed:
                    last.dropped += 1
                else:
                    items.append(_Gap())  # one slot past the bound, at most once per gap
        self.wake()

    def _put_waiting(self, item: EventSource) -> None:
        if self.closed:
            return
        if self.detached or self.bus._consumes_lossless(threading.current_thread()):
            self.items.append(item)  # the soft bound: waiting here could deadlock
            self.wake(force=True)
            return
        with self.cond:
            self.blocked += 1
            try:
                started = warned = time.monotonic()
                while len(self.items) >= self.maxsize and not (self.closed or self.detached):
                    self.wake(force=True)
                    if self.gone():
                        self.close(reason="its consumer's thread or event loop is gone")
                        return
                    self.cond.wait(_BLOCK_POLL)
                    now = time.monotonic()
                    if now - warned >= _BLOCK_WARN:
                        warned = now
                        logger.warning(
                            "publish has waited %.0f s for lossless subscriber %r to make room",
                            now - started,
                            self.name,
                        )
            finally:
                self.blocked -= 1
            if self.closed:
                return
            self.items.append(item)
        self.wake(force=True)

    def put_barrier(self, barrier: Barrier) -> None:
        self.flush_requested = True
        self.items.append(barrier)
        if self.closed:
            barrier.release()  # close() may have swept the buffer before the append
            return
        if self.acked == self.delivered and self.items and self.items[0] is barrier:
            # Nothing ahead of it: a caught-up consumer that reads no more (it may be
            # done) must not hold the flush. It stays queued; a later read skips it.
            barrier.release()
            return
        self.wake(force=True)

    def gone(self) -> bool:
        """True when nobody can consume this buffer any more."""
        if not self.consumer_thread.is_alive():
            return True
        loop = self.consumer_loop
        return loop is not None and loop.is_closed()

    # -- consumer side -------------------------------------------------------------------

    def bind(self, task: asyncio.Task[Any] | None) -> None:
        self.consumer_task = task
        self.consumer_loop = asyncio.get_running_loop()
        self.consumer_thread = threading.current_thread()

    async def wait(self, threshold: int, deadline: float | None = None) -> None:
        """Park until ``threshold`` items are buffered, a flush or close comes, or ``deadline``.

        A pending flush ends only a wait with a deadline (a batch being gathered); a plain
        wait for one item is ended by the flush marker itself, which is an item.
        """
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop, threshold)
        self.waiter = waiter
        try:
            # Re-check after publishing the waiter: a publisher that appended before seeing it
            # did not wake us.
            if (
                len(self.items) >= threshold
                or (deadline is not None and self.flush_requested)
                or self.closed
                or self.detached
            ):
                return
            if deadline is None:
                await waiter.future
                return
            timer = loop.call_at(deadline, _set_done, waiter.future)
            try:
                await waiter.future
            finally:
                timer.cancel()
        finally:
            self.waiter = None

    def take(self, limit: int) -> list[Delivered]:
        """Pop up to ``limit`` deliverable items, materialising them here, off the engine's path."""
        self.flush_requested = False
        items = self.items
        out: list[Delivered] = []
        while len(out) < limit:
            try:
                item = items.popleft()
            except IndexError:
                break
            kind = type(item)
            if kind is Barrier:
                item.position = self.delivered
                self.barriers.append(item)
                continue
            if kind is _Gap:
                with self.cond:
                    item.sealed = True
                out.append(GapNotice(item.dropped))
            elif not self.materialise:
                out.append(item)
            else:
                try:
                    out.append(item.to_event())
                except Exception:
                    logger.exception(
                        "subscriber %r skipped an item whose to_event() failed: %r",
                        self.name,
                        item,
                    )
                    continue
            self.delivered += 1
        if self.blocked:
            with self.cond:
                self.cond.notify_all()
        if self.barriers:
            self.release_barriers()
        return out

    def ack(self, count: int | None = None, *, failed: bool = False) -> None:
        unacked = self.delivered - self.acked
        if count is None:
            count = unacked
        elif not 0 <= count <= unacked:
            raise ValueError(f"cannot ack {count} items; {unacked} delivered and not yet acked")
        self.acked += count
        if failed and count:
            self.failed_upto = self.acked
        if self.barriers:
            self.release_barriers()
        if self.acked == self.delivered:
            # Flush markers right behind what was just acked need no further read to be released.
            items = self.items
            while items and type(items[0]) is Barrier:
                try:
                    item = items.popleft()
                except IndexError:  # close() swept the buffer meanwhile
                    break
                if type(item) is Barrier:
                    item.failed = self.failed_upto > item.floor
                    item.release()

    def release_barriers(self) -> None:
        barriers = self.barriers
        if self.closed:
            while barriers:
                barriers.popleft().release()
            return
        while barriers and barriers[0].position <= self.acked:
            barrier = barriers.popleft()
            barrier.failed = self.failed_upto > barrier.floor
            barrier.release()

    # -- lifecycle -----------------------------------------------------------------------

    def detach(self) -> None:
        """Take no new items; the consumer still gets what is buffered, then the end."""
        self.detached = True
        self.bus._remove(self)
        self.wake(force=True)
        with self.cond:
            self.cond.notify_all()

    def close(self, reason: str | None = None, *, prune: bool = True) -> None:
        """Stop delivery: discard what is buffered and release every flush waiting on it."""
        if self.closed:
            return
        self.closed = True
        if reason is not None:
            logger.warning(
                "closing %s subscriber %r: %s (%d buffered items discarded)",
                "lossless" if self.lossless else "lossy",
                self.name,
                reason,
                len(self.items),
            )
        if prune:
            self.bus._remove(self)
            with self.cond:
                self.cond.notify_all()
        else:
            self.bus._prune_later()
        while True:
            try:
                item = self.items.popleft()
            except IndexError:
                break
            if type(item) is Barrier:
                item.release()
        for barrier in tuple(self.barriers):
            barrier.release()
        self.wake(force=True)
