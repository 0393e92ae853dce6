"""A subscriber's handle on the bus: the async iterator and batch API over one buffer."""

from __future__ import annotations

import asyncio
import weakref
from types import TracebackType

from headwater.events.buffer import Buffer, Delivered

__all__ = ["Subscription"]


class Subscription:
    """A subscriber's handle: an async iterator of events and a batch API, on any event loop.

    Iterating (``async for``) yields :class:`Event` objects, and :class:`GapNotice` objects for
    a lossy subscription. Asking for the next item acknowledges the previous one; for a lossless
    subscription an item counts as processed (for :meth:`EventBus.flush`) only once acknowledged.
    :meth:`get_batch` delivers several items at once and leaves acknowledging to :meth:`ack`,
    so a database writer acks after its transaction commits.

    Consume from the loop (and thread) that subscribed or the one that first consumes: a
    blocked publisher treats the subscription as dead once that thread ends or that loop closes.
    Use ``async with`` (or :meth:`close`) so that delivery stops when you stop reading; a
    subscription that is garbage collected is closed too.
    """

    __slots__ = ("__weakref__", "_buffer", "_finalizer")

    def __init__(self, buffer: Buffer) -> None:
        self._buffer = buffer
        # Closing from a finalizer must not take the bus lock: the GC may run while it is held.
        self._finalizer = weakref.finalize(self, buffer.close, prune=False)
        self._finalizer.atexit = False  # at exit the service flushes first; do not close before

    @property
    def name(self) -> str:
        return self._buffer.name

    @property
    def lossless(self) -> bool:
        return self._buffer.lossless

    @property
    def buffer_size(self) -> int:
        return self._buffer.maxsize

    @property
    def closed(self) -> bool:
        return self._buffer.closed

    @property
    def pending(self) -> int:
        """Items buffered and not yet delivered."""
        return len(self._buffer.items)

    @property
    def dropped(self) -> int:
        """Items a lossy subscription has dropped so far (always 0 for a lossless one)."""
        return self._buffer.dropped

    def _bind(self) -> Buffer:
        buffer = self._buffer
        task = asyncio.current_task()
        if buffer.consumer_task is not task or task is None:
            buffer.bind(task)
        return buffer

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Delivered:
        buffer = self._bind()
        buffer.ack()
        while not buffer.closed:
            if buffer.items:
                taken = buffer.take(1)
                if taken:
                    return taken[0]
                continue  # only a flush marker or an unreadable item was there
            if buffer.detached:
                break
            await buffer.wait(1)
        raise StopAsyncIteration

    async def get_batch(self, max_items: int = 1000, max_latency: float = 0.05) -> list[Delivered]:
        """Wait for at least one item, then gather more for up to ``max_latency`` seconds.

        Returns as soon as ``max_items`` items are ready (or the buffer is full, or a flush is
        waiting), otherwise ``max_latency`` seconds after the first item. Returned items are
        not acknowledged: call :meth:`ack` once they are safely processed. Cancelling the call
        loses nothing, since items leave the buffer only when it returns.

        Returns:
            The items, oldest first; an empty list once the subscription is closed.
        """
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        buffer = self._bind()
        loop = asyncio.get_running_loop()
        while True:
            while not buffer.items:
                if buffer.closed or buffer.detached:
                    return []
                await buffer.wait(1)
            if buffer.closed:
                return []
            target = min(max_items, buffer.maxsize)
            if max_latency > 0 and len(buffer.items) < target:
                deadline = loop.time() + max_latency
                while not (
                    len(buffer.items) >= target
                    or buffer.flush_requested
                    or buffer.closed
                    or buffer.detached
                    or loop.time() >= deadline
                ):
                    await buffer.wait(target, deadline)
            taken = buffer.take(max_items)
            if taken or buffer.closed:
                return taken

    def ack(self, count: int | None = None, *, failed: bool = False) -> None:
        """Mark the ``count`` oldest delivered items (default: all of them) as handled.

        Args:
            count: how many; all delivered and not yet acked items by default.
            failed: the items could not be processed (e.g. the database refused the write).
                They are acked all the same, so publishers never wait on a broken consumer,
                but a ``flush()`` covering them returns False.

        Raises:
            ValueError: ``count`` is more than what was delivered and not yet acknowledged.
        """
        self._buffer.ack(count, failed=failed)

    def detach(self) -> None:
        """Take no new events but deliver those buffered; then iteration ends (for shutdown).

        Once drained, ``async for`` stops and :meth:`get_batch` returns ``[]``, so a consumer
        loop ends after handling everything published before the call.
        """
        self._buffer.detach()

    def close(self) -> None:
        """Stop delivery: later events are not buffered and buffered ones are discarded."""
        self._finalizer.detach()
        self._buffer.ack()
        self._buffer.close()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "lossless" if self.lossless else "lossy"
        return f"<Subscription {self.name!r} {kind} pending={self.pending}/{self.buffer_size}>"
