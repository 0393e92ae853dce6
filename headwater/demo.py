"""The README's demo: an async flow with fan-out, a retry and a failure, watched live.

Run it with ``python -m headwater.demo``. Nothing to start first: the events are printed
by a consumer on headwater's own bus as the run goes.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, TextIO

from headwater import allow_failure, flow, get_run_logger, task
from headwater.events import Event, get_bus

__all__ = ["main", "nightly_etl"]

_attempts: dict[str, int] = {}


@task(retries=2, retry_delay_seconds=0.1)
async def fetch(source: str) -> list[int]:
    """Fetch rows; "flaky" fails on its first attempt, "broken" always fails."""
    _attempts[source] = _attempts.get(source, 0) + 1
    await asyncio.sleep(0.05)
    if source == "broken":
        raise ConnectionError(f"{source}: connection refused")
    if source == "flaky" and _attempts[source] == 1:
        raise TimeoutError(f"{source}: read timed out")
    return [len(source) * i for i in range(1, 4)]


@task
async def summarise(batches: list[Any]) -> int:
    usable = [batch for batch in batches if isinstance(batch, list)]
    get_run_logger().info("%d of %d sources usable", len(usable), len(batches))
    return sum(sum(batch) for batch in usable)


@flow(log_prints=True)
async def nightly_etl(sources: list[str]) -> int:
    """Fan out one fetch per source, tolerate the broken one, and summarise."""
    futures = [fetch.submit(source) for source in sources]
    total = await summarise([allow_failure(future) for future in futures])
    print(f"total = {total}")
    return total


_COLOURS = {
    "COMPLETED": "32",
    "FAILED": "31",
    "CRASHED": "35",
    "RUNNING": "36",
    "SCHEDULED": "33",
    "PENDING": "2",
}


def _event_line(event: Event, colour: bool) -> str:
    state_type = event.resource.get("headwater.state-type", "")
    name = event.resource.get("headwater.resource.name", event.resource_id)
    clock = event.occurred.strftime("%H:%M:%S.%f")[:-3]
    text = f"{clock}  {event.event:<34} {name}"
    code = _COLOURS.get(state_type)
    return f"\033[{code}m{text}\033[0m" if colour and code else text


def main(out: TextIO | None = None) -> int:
    """Run the demo flow, printing every event as it happens, then a table of the runs."""
    stream = out or sys.stdout
    colour = stream.isatty()
    seen: list[Event] = []

    def show(event: Event) -> None:
        seen.append(event)
        print(_event_line(event, colour), file=stream, flush=True)

    bus = get_bus()
    consumer = bus.add_consumer(show, lossless=True, name="demo-printer")
    try:
        print("headwater demo: live run events\n", file=stream)
        asyncio.run(nightly_etl(["orders", "flaky", "broken", "customers"]))
        bus.flush(timeout=10)
    finally:
        consumer.close()

    final: dict[str, Event] = {}
    for event in seen:
        if event.event.startswith(("headwater.flow-run.", "headwater.task-run.")):
            final[event.resource_id] = event
    print(f"\n{'run':<24}{'kind':<10}{'state':<12}{'attempts':>8}", file=stream)
    for event in final.values():
        kind = "flow" if ".flow-run." in event.resource_id else "task"
        print(
            f"{event.resource.get('headwater.resource.name', ''):<24}{kind:<10}"
            f"{event.resource['headwater.state-name']:<12}"
            f"{event.resource.get('headwater.run-count', ''):>8}",
            file=stream,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
