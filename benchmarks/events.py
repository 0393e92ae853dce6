"""Event bus figures: what ``publish`` costs the engine, per event.

Run: ``.venv/bin/python benchmarks/events.py [--n 100000] [--repeat 5]``

Rows (best of ``--repeat`` runs, each over ``--n`` events):

- publish with no subscriber (budget ~0.2 us).
- publish with one lossless callback consumer (on the service loop) and one lossy observer
  (an ``async for`` on an event loop in another thread, like a websocket client): the
  publishing thread's CPU time per event (budget 3 us). Consumers run in other threads and
  share the GIL, so the publisher's wall-clock time per event, also shown, includes part
  of their work and the waits on a full lossless buffer.
- the same workload end to end, until ``flush()`` confirms the lossless consumer has
  processed everything (throughput of the whole path, no budget).
- ``flush()`` with no lossless subscriber (the engine calls it after every flow run).

Events are built before timing: materialising an event is the consumers' cost, not publish's.
Each figure is a function returning :class:`Row` objects; ``main`` prints them as a table,
so other figures (persistence) can be added as more functions.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from headwater.events.bus import EventBus
from headwater.events.schema import RESOURCE_ID, Event, Resource

PUBLISH_BUDGET_US = 3.0
PUBLISH_IDLE_BUDGET_US = 0.2


@dataclass
class Row:
    """One line of the table."""

    name: str
    value: float
    unit: str
    budget: float | None = None

    @property
    def verdict(self) -> str:
        if self.budget is None:
            return ""
        return "ok" if self.value <= self.budget else "OVER"


def make_events(n: int, distinct: int = 1000) -> list[Event]:
    """``n`` events over ``distinct`` objects, shaped like task-run state changes."""
    pool = [
        Event(
            event="headwater.task-run.Completed",
            resource=Resource(
                {RESOURCE_ID: f"headwater.task-run.{i}", "headwater.resource.name": "t"}
            ),
            payload={"seq": i},
        )
        for i in range(distinct)
    ]
    return [pool[i % distinct] for i in range(n)]


def _best(repeat: int, run: Callable[[], tuple[float, ...]]) -> tuple[float, ...]:
    results = [run() for _ in range(repeat)]
    return tuple(min(column) for column in zip(*results, strict=True))


def bench_publish_idle(n: int, repeat: int) -> list[Row]:
    """Publish with nobody subscribed."""
    events = make_events(n)

    def run() -> tuple[float, ...]:
        publish = EventBus().publish
        started = time.perf_counter()
        for event in events:
            publish(event)
        return ((time.perf_counter() - started) / n * 1e6,)

    (us,) = _best(repeat, run)
    return [Row("publish, no subscriber", us, "us/event", PUBLISH_IDLE_BUDGET_US)]


class _Observer:
    """A lossy ``async for`` subscriber on an event loop in its own thread."""

    def __init__(self, bus: EventBus) -> None:
        self.received = 0
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(bus),), daemon=True)
        self._thread.start()
        self._ready.wait()

    async def _main(self, bus: EventBus) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with bus.subscribe(lossless=False, name="observer") as sub:
            reader = asyncio.ensure_future(self._read(sub))
            self._ready.set()
            await self._stop.wait()
            reader.cancel()

    async def _read(self, sub: object) -> None:
        async for _ in sub:  # type: ignore[attr-defined]
            self.received += 1

    def close(self) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def bench_publish_subscribed(n: int, repeat: int) -> list[Row]:
    """Publish with one lossless callback consumer and one lossy observer attached."""
    events = make_events(n)

    def run() -> tuple[float, ...]:
        bus = EventBus()
        consumed = [0]

        def count(event: Event) -> None:
            consumed[0] += 1

        consumer = bus.add_consumer(count, lossless=True, name="lossless")
        observer = _Observer(bus)
        publish = bus.publish
        started, cpu_started = time.perf_counter(), time.thread_time()
        for event in events:
            publish(event)
        cpu = time.thread_time() - cpu_started
        wall = time.perf_counter() - started
        assert bus.flush(timeout=60), "the lossless consumer did not catch up"
        end_to_end = time.perf_counter() - started
        assert consumed[0] == n, consumed
        consumer.close()
        observer.close()
        return (cpu / n * 1e6, wall / n * 1e6, end_to_end / n * 1e6)

    cpu, wall, end_to_end = _best(repeat, run)
    return [
        Row("publish, 1 lossless + 1 lossy (publisher CPU)", cpu, "us/event", PUBLISH_BUDGET_US),
        Row("publish, 1 lossless + 1 lossy (wall, GIL shared)", wall, "us/event"),
        Row("publish + consume until flush() returns", end_to_end, "us/event"),
    ]


def bench_flush_idle(n: int, repeat: int) -> list[Row]:
    """``flush()`` when no lossless subscriber exists (the end of every flow run)."""
    bus = EventBus()
    observer = bus.subscribe(lossless=False)  # a lossy one does not make flush wait

    def run() -> tuple[float, ...]:
        flush = bus.flush
        started = time.perf_counter()
        for _ in range(n):
            flush()
        return ((time.perf_counter() - started) / n * 1e9,)

    (ns,) = _best(repeat, run)
    observer.close()
    return [Row("flush(), no lossless subscriber", ns, "ns/call")]


FIGURES: list[Callable[[int, int], list[Row]]] = [
    bench_publish_idle,
    bench_publish_subscribed,
    bench_flush_idle,
]


def print_table(rows: Sequence[Row]) -> None:
    width = max(len(row.name) for row in rows)
    print(f"{'figure':<{width}}  {'value':>9}  {'unit':<9}  {'budget':>7}")
    for row in rows:
        budget = "" if row.budget is None else f"{row.budget:.2f}"
        print(f"{row.name:<{width}}  {row.value:>9.3f}  {row.unit:<9}  {budget:>7}  {row.verdict}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="events per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (best is kept)")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    for figure in FIGURES:
        rows.extend(figure(args.n, args.repeat))
    print(f"event bus, {args.n:,} events per run, best of {args.repeat}")
    print_table(rows)


if __name__ == "__main__":
    main()
