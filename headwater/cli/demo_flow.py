"""The README's demo flow: fan-out, a retry and a failure; imported when the demo runs.

Kept apart from :mod:`headwater.cli.demo` so that the CLI defines no flow (which reads the
settings) until the demo is asked for.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from headwater import allow_failure, flow, get_run_logger, task
from headwater.events.bus import get_bus
from headwater.events.schema import Event

__all__ = ["SOURCES", "nightly_etl", "run_demo"]

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


SOURCES = ["orders", "flaky", "broken", "customers"]


def run_demo(on_event: Callable[[Event], None]) -> uuid.UUID | None:
    """Run :func:`nightly_etl` once, handing every event to ``on_event`` as it happens.

    ``on_event`` runs on headwater's service loop as a lossless bus consumer, so it sees
    every event of the run, in order, while the run goes on; it has seen the last one when
    this returns.

    Returns:
        The id of the demo's flow run (None only if its events never came).
    """
    _attempts.clear()  # "flaky" must fail on its first attempt on every run of the demo
    flow_run_ids: list[uuid.UUID] = []

    def consume(event: Event) -> None:
        if not flow_run_ids and event.event.startswith("headwater.flow-run."):
            flow_run_ids.append(uuid.UUID(event.resource_id.rsplit(".", 1)[1]))
        on_event(event)

    bus = get_bus()
    consumer = bus.add_consumer(consume, lossless=True, name="demo-printer")
    try:
        asyncio.run(nightly_etl(SOURCES))
        bus.flush(timeout=10)
    finally:
        consumer.close()
    return flow_run_ids[0] if flow_run_ids else None
