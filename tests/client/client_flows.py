"""Flows the client tests run in subprocesses with HEADWATER_API_URL set.

Usage: ``python client_flows.py MODE COUNT PAUSE``; prints one JSON line per report:
the flow run id, its final state type, the forwarder's stats and every event id this
process published, in publish order. MODE ``once`` reports after the flow; ``wait-live``
reports after the flow, then waits until the forwarder is live again (its outbox sent) and
reports once more.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import msgspec

from headwater import flow, task
from headwater.client import get_forwarder
from headwater.events import get_bus


@task
async def step(index: int, pause: float) -> int:
    await asyncio.sleep(pause)
    return index


@flow(name="forwarded")
async def forwarded(count: int, pause: float) -> int:
    total = 0
    for index in range(count):  # one after another: the run lasts count * pause seconds
        total += await step(index, pause)
    return total


def main() -> None:
    mode, count, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    published: list[str] = []
    # Records the publish order (a lossless consumer sees every event in that order).
    get_bus().add_consumer(lambda event: published.append(str(event.id)), name="recorder")
    state = asyncio.run(forwarded(count, pause, return_state=True))
    get_bus().flush(timeout=30)
    forwarder = get_forwarder()
    assert forwarder is not None

    def report(**extra: object) -> None:
        body = {
            "flow_run_id": str(state.state_details.flow_run_id),
            "state": state.type.value,
            "stats": msgspec.to_builtins(forwarder.stats),
            "live": forwarder.live,
            "outbox": str(forwarder.outbox.path),
            "published": published,
            **extra,
        }
        print(json.dumps(body), flush=True)

    report()
    if mode == "wait-live":
        deadline = time.monotonic() + 30
        while not forwarder.live and time.monotonic() < deadline:
            time.sleep(0.05)
        report()


if __name__ == "__main__":
    main()
