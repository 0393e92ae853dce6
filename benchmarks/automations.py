"""Automation trigger evaluation cost and event-to-action latency, in-process.

Run: ``python benchmarks/automations.py [--events 20000] [--pings 500]``.

(e) evaluation cost per event with 1, 100 and 1,000 automations loaded, for events that
    match none of them, measured through ``Reactor.evaluate`` (the consumer's whole path
    after the bus). Two kinds of non-matching event:
      name:     its name is not one the automations expect (the index rules them out);
      resource: its name is expected by every automation, its resource by none (each
                candidate's compiled resource spec is tested: the worst case).
(l) latency from publishing a matching event to its action starting (p50/p99), through the
    real bus, reactor, checkpoint and action runner, one event at a time.

Budgets: (e) <= 20 us per event per 100 non-matching automations; (l) p99 < 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import statistics
import tempfile
import threading
import time
from pathlib import Path

from headwater.automations import Automation, DoNothing, EventTrigger
from headwater.events.bus import EventBus
from headwater.events.schema import Event
from headwater.settings import get_settings, temporary_settings

BUDGET_PER_100_US = 20.0
BUDGET_P99_MS = 10.0


def _automation(index: int) -> Automation:
    # A realistic mix: exact names, prefixes and globs, and a resource spec to test.
    kind = index % 3
    expect = [f"bench.{index}.done", f"bench.{index}.failed*", f"bench.{index}.r[0-9]"][kind]
    automation = Automation(
        name=f"bench-{index}",
        trigger=EventTrigger(
            expect=[expect, "shared.event"],
            match={"headwater.resource.id": f"res.{index}.*"},
            match_related={"headwater.resource.role": "tag", "headwater.resource.id": "tag.*"},
        ),
        actions=[DoNothing()],
    )
    automation.id = __import__("uuid").uuid4()
    return automation


def _event(name: str) -> Event:
    return Event(
        event=name,
        occurred=datetime.datetime.now(datetime.timezone.utc),
        resource={"headwater.resource.id": "res.none.1"},
        related=[{"headwater.resource.id": "tag.prod", "headwater.resource.role": "tag"}],
    )


async def _evaluation(counts: list[int], events: int) -> dict[str, dict[int, float]]:
    from headwater.automations.reactor import Reactor

    results: dict[str, dict[int, float]] = {"name": {}, "resource": {}}
    for count in counts:
        reactor = await Reactor.open(get_settings(), EventBus())
        try:
            for index in range(count):
                reactor._install(_automation(index), forget_state=False)
            for kind, name in (("name", "other.event"), ("resource", "shared.event")):
                batch = [_event(name) for _ in range(500)]
                best = float("inf")
                for _ in range(3):
                    started = time.perf_counter()
                    for _ in range(events // len(batch)):
                        reactor.evaluate(batch)
                    elapsed = time.perf_counter() - started
                    best = min(best, elapsed / (events // len(batch) * len(batch)))
                results[kind][count] = best * 1e6
            assert not reactor._pending, "a non-matching event fired"
        finally:
            if reactor.subscription is not None:
                reactor.subscription.close()
            await reactor.database.close()
    return results


def _latency(pings: int) -> list[float]:
    from headwater import emit_event
    from headwater.automations import actions
    from headwater.automations.service import start_reactor, stop_reactor

    started: list[float] = []
    arrived = threading.Semaphore(0)
    original = actions._HANDLERS[DoNothing]

    async def timed(context: actions.ActionContext) -> dict:
        started.append(time.perf_counter())
        arrived.release()
        return {}

    actions._HANDLERS[DoNothing] = timed
    try:
        Automation(
            name="latency", trigger=EventTrigger(expect=["lat.ping"]), actions=[DoNothing()]
        ).create()
        start_reactor()
        latencies = []
        for _ in range(pings):
            sent = time.perf_counter()
            emit_event("lat.ping", resource={"headwater.resource.id": "lat.1"})
            if not arrived.acquire(timeout=10):
                raise RuntimeError("the action did not start within 10 s")
            latencies.append((started[-1] - sent) * 1000)
            time.sleep(0.002)
        stop_reactor()
        return latencies
    finally:
        actions._HANDLERS[DoNothing] = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--pings", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home, temporary_settings(home=Path(home)):
        evaluation = asyncio.run(_evaluation([1, 100, 1000], args.events))
        latencies = _latency(args.pings)
    print("(e) evaluation cost per non-matching event (us)")
    ok = True
    for kind, by_count in evaluation.items():
        cells = "  ".join(
            f"{count:>5} automations: {cost:7.2f}" for count, cost in by_count.items()
        )
        per_100 = max(by_count[100], by_count[1000] / 10)
        ok &= per_100 <= BUDGET_PER_100_US
        print(f"    {kind:<9} {cells}   per 100: {per_100:.2f} (budget {BUDGET_PER_100_US})")
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    ok &= p99 < BUDGET_P99_MS
    print(
        f"(l) event -> action start over {len(latencies)} events: p50 {p50:.2f} ms, "
        f"p99 {p99:.2f} ms, max {latencies[-1]:.2f} ms (budget p99 < {BUDGET_P99_MS} ms)"
    )
    print("within budget" if ok else "OVER BUDGET")


if __name__ == "__main__":
    main()
