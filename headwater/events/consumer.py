"""A callback consumer of the bus, hosted as a task on the service loop."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from headwater.events.subscription import Subscription

__all__ = ["Consumer"]

logger = logging.getLogger("headwater.events")


class Consumer:
    """A callback consumer hosted on the service loop (see ``EventBus.add_consumer``).

    It handles one item at a time, in order; an item of a lossless consumer counts as processed
    once the callback has returned (or raised: the error is logged and the item is not retried).
    """

    def __init__(
        self, subscription: Subscription, callback: Callable[[Any], Any], name: str
    ) -> None:
        self._subscription = subscription
        self._callback = callback
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def subscription(self) -> Subscription:
        return self._subscription

    @property
    def closed(self) -> bool:
        return self._subscription.closed

    def close(self) -> None:
        """Stop delivering to the callback; events still buffered are discarded."""
        self._subscription.close()

    async def run(self) -> None:
        callback = self._callback
        try:
            async for item in self._subscription:
                try:
                    result = callback(item)
                    if inspect.isawaitable(result):
                        await result
                except asyncio.CancelledError:
                    raise
                except BaseException:
                    # Nothing a callback does may reach the publisher or stop the consumer.
                    logger.exception(
                        "event consumer %r raised while handling %s", self._name, _describe(item)
                    )
        finally:
            self._subscription.close()

    def __repr__(self) -> str:
        return f"<Consumer {self._name!r} closed={self.closed}>"


def _describe(item: Any) -> str:
    event = getattr(item, "event", None)
    return f"event {event!r} ({getattr(item, 'id', '?')})" if event else repr(item)
