"""One bus subscription for every feed observer, and an index that routes events to them.

With a bus subscription per observer, each observer cost every publisher a buffer append
and, when it was waiting, a cross-thread wake-up for every event, matched or not: 99 idle
observers made a flow run 2.6 times slower. Here the bus has one lossy subscriber, the
fan-out, whatever the number of observers; it runs on the server's loop and hands each
event only to the observers that may want it:

- an observer whose filter names events (``event.name``) is indexed by those names;
- otherwise one whose filter names resources (``resource.id``) is indexed by those ids;
- any other observer sees every event.

Each observer then applies its whole filter itself. An observer's own queue is bounded and
lossy: when it is full the observer gets a :class:`GapNotice` at the place events went
missing (counting those it had no room for); the fan-out and the other observers never wait
for it. When the fan-out itself falls behind the bus, every observer gets the bus's gap.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from headwater.events.bus import EventBus, GapNotice, Subscription
from headwater.events.filters import EventFilter
from headwater.server.wire import as_received

__all__ = ["FANOUT_BUFFER", "FeedFanout", "ObserverQueue"]

FANOUT_BUFFER = 100_000
"""Events the fan-out may lag behind the bus before observers are told of a gap."""
_BATCH = 512


class ObserverQueue:
    """One observer's bounded, lossy queue of events (and gap notices), read by its task."""

    def __init__(self, event_filter: EventFilter, maxsize: int) -> None:
        self.filter = event_filter
        self.maxsize = maxsize
        self.items: deque[Any] = deque()
        self.dropped = 0  # dropped since the last item queued
        self.closed = False
        self._ready = asyncio.Event()

    @property
    def pending(self) -> int:
        """Items queued and not yet taken."""
        return len(self.items)

    def offer(self, item: Any) -> None:
        if self.closed:
            return
        if len(self.items) >= self.maxsize:
            self.dropped += 1
            return
        if self.dropped:
            self.items.append(GapNotice(self.dropped))
            self.dropped = 0
        self.items.append(item)
        self._ready.set()

    def gap(self, dropped: int) -> None:
        """The fan-out itself lost ``dropped`` events: tell this observer where."""
        self.dropped += dropped
        if len(self.items) < self.maxsize:
            self.items.append(GapNotice(self.dropped))
            self.dropped = 0
            self._ready.set()

    async def get_batch(self, max_items: int) -> list[Any]:
        """Wait for items and take up to ``max_items``; ``[]`` once closed."""
        while not self.items:
            if self.closed:
                return []
            self._ready.clear()
            await self._ready.wait()
        count = min(max_items, len(self.items))
        return [self.items.popleft() for _ in range(count)]

    def close(self) -> None:
        self.closed = True
        self.items.clear()
        self._ready.set()


class FeedFanout:
    """The feed's one bus subscriber; observers join with :meth:`add`, leave with :meth:`remove`."""

    def __init__(self, bus: EventBus, buffer_size: int = FANOUT_BUFFER) -> None:
        self.bus = bus
        self.buffer_size = buffer_size
        self.subscription: Subscription | None = None
        self._everything: set[ObserverQueue] = set()
        self._by_name: dict[str, set[ObserverQueue]] = {}
        self._by_resource: dict[str, set[ObserverQueue]] = {}

    @property
    def observers(self) -> int:
        return len(self._all())

    def start(self) -> None:
        """Subscribe to the bus (from the loop that will :meth:`run` it)."""
        self.subscription = self.bus.subscribe(
            lossless=False, buffer_size=self.buffer_size, name="feed", materialise=False
        )

    async def run(self) -> None:
        """Route bus items to observers until the subscription is closed."""
        subscription = self.subscription
        assert subscription is not None
        try:
            while True:
                items = await subscription.get_batch(_BATCH, max_latency=0)
                if not items:
                    return
                subscription.ack()
                for item in items:
                    self._route(item)
        finally:
            subscription.close()

    def _route(self, item: Any) -> None:
        if type(item) is GapNotice:
            for queue in self._all():
                queue.gap(item.dropped)
            return
        targets: set[ObserverQueue] = self._everything
        named = self._by_name.get(_event_name(item)) if self._by_name else None
        about = self._by_resource.get(item.resource_id) if self._by_resource else None
        if named or about:  # a new set only when indexed observers are concerned
            targets = targets.union(named or (), about or ())
        if targets:
            received = as_received(item)  # materialised once, for every observer
            for queue in targets:
                queue.offer(received)

    def add(self, event_filter: EventFilter, maxsize: int) -> ObserverQueue:
        queue = ObserverQueue(event_filter, maxsize)
        names = event_filter.event.name if event_filter.event is not None else None
        resources = event_filter.resource.id if event_filter.resource is not None else None
        if names:
            for name in names:
                self._by_name.setdefault(name, set()).add(queue)
        elif resources:
            for resource_id in resources:
                self._by_resource.setdefault(resource_id, set()).add(queue)
        else:
            self._everything.add(queue)
        return queue

    def remove(self, queue: ObserverQueue) -> None:
        queue.close()
        self._everything.discard(queue)
        for index in (self._by_name, self._by_resource):
            for key in [key for key, queues in index.items() if queue in queues]:
                index[key].discard(queue)
                if not index[key]:
                    del index[key]

    def _all(self) -> set[ObserverQueue]:
        found = set(self._everything)
        for index in (self._by_name, self._by_resource):
            for queues in index.values():
                found |= queues
        return found

    def close(self) -> None:
        if self.subscription is not None:
            self.subscription.close()
        for queue in self._all():
            queue.close()


def _event_name(item: Any) -> str:
    # records and received events carry their name; a plain Event is its own
    name = getattr(item, "event_name", None)
    if name is None:
        event = getattr(item, "event", None)
        name = event if isinstance(event, str) else item.to_event().event
    return str(name)
