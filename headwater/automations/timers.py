"""One scheduler of deadlines for the reactor: a heap and a single sleeping task.

Proactive windows close at known times, so the reactor schedules each bucket's end here
instead of sweeping every bucket every few seconds as Prefect does. Deadlines are wall-clock
times (seconds since the epoch, like bucket bounds); stale entries are allowed and cost one
no-op when they come up, so nothing is ever removed from the heap but its top.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any

import anyio

__all__ = ["Deadlines"]

_LONGEST_SLEEP = 30.0  # re-read the wall clock at least this often, in case it jumps


class Deadlines:
    """Deadlines with payloads; :meth:`run` calls ``handle(due, now)`` as they come.

    Args:
        clock: wall-clock time in seconds since the epoch (tests pass their own).
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, Any]] = []
        self._order = itertools.count()
        self._wake = anyio.Event()

    def __len__(self) -> int:
        return len(self._heap)

    @property
    def next_deadline(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def add(self, when: float, item: Any) -> None:
        """Schedule ``item`` at ``when``; wakes the runner only if it is the new earliest."""
        heap = self._heap
        earliest = heap[0][0] if heap else None
        heapq.heappush(heap, (when, next(self._order), item))
        if earliest is None or when < earliest:
            self._wake.set()

    def pop_due(self, now: float) -> list[Any]:
        """Remove and return every item due at ``now``, earliest first."""
        due = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            due.append(heapq.heappop(heap)[2])
        return due

    async def run(self, handle: Callable[[list[Any], float], None]) -> None:
        """Sleep until the earliest deadline, hand over what is due, repeat; never returns."""
        while True:
            now = self._clock()
            due = self.pop_due(now)
            if due:
                handle(due, now)
                continue
            self._wake = anyio.Event()
            delay = _LONGEST_SLEEP
            if self._heap:
                delay = min(self._heap[0][0] - now, _LONGEST_SLEEP)
            with anyio.move_on_after(max(delay, 0.0)):
                await self._wake.wait()
