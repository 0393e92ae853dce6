"""How fast the persistence writer commits events: prints events/s.

Workload: task-run state events shaped like the engine's (Pending, Running, Completed for
each task, with flow, flow-run, task and tag related resources), written to a fresh SQLite
file in a temporary directory.

- ``direct``: ``PersistenceWriter.write_events`` in batches of ``--batch-size``.
- ``bus``: published on an ``EventBus`` and consumed by ``PersistenceWriter.run`` through a
  lossless subscription, timed until ``bus.flush()`` returns (i.e. until all is committed).

Run: ``.venv/bin/python benchmarks/persistence.py [--events 100000] [--batch-size 1000]``
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import threading
import time
import uuid
from pathlib import Path

import anyio

from headwater._ids import new_uuid
from headwater.events.bus import EventBus
from headwater.events.schema import Event
from headwater.storage.database import open_database
from headwater.storage.writer import PersistenceWriter

STATES = (("Pending", "PENDING"), ("Running", "RUNNING"), ("Completed", "COMPLETED"))


def make_events(count: int) -> list[Event]:
    """``count`` task-run state events of one flow run, three per task."""
    flow_run_id = uuid.uuid4()
    events: list[Event] = []
    task = 0
    while len(events) < count:
        task_run_id = new_uuid()
        previous: uuid.UUID | None = None
        previous_type: str | None = None
        for name, type_ in STATES:
            state_id = new_uuid()
            now = datetime.datetime.now(datetime.timezone.utc)
            state = {
                "id": str(state_id),
                "type": type_,
                "name": name,
                "message": "",
                "timestamp": now.isoformat(),
            }
            events.append(
                Event(
                    occurred=now,
                    event=f"headwater.task-run.{name}",
                    id=state_id,
                    follows=previous,
                    resource={  # type: ignore[arg-type]
                        "headwater.resource.id": f"headwater.task-run.{task_run_id}",
                        "headwater.resource.name": f"add-{task}",
                        "headwater.orchestration": "client",
                        "headwater.run-count": "1" if type_ != "PENDING" else "0",
                        "headwater.state-type": type_,
                        "headwater.state-name": name,
                        "headwater.state-message": "",
                        "headwater.state-timestamp": now.isoformat(),
                    },
                    related=[  # type: ignore[list-item]
                        {
                            "headwater.resource.id": f"headwater.flow-run.{flow_run_id}",
                            "headwater.resource.role": "flow-run",
                            "headwater.resource.name": "bench-run",
                        },
                        {
                            "headwater.resource.id": "headwater.flow.bench",
                            "headwater.resource.role": "flow",
                            "headwater.resource.name": "bench",
                        },
                        {
                            "headwater.resource.id": "headwater.task.add-1a2b",
                            "headwater.resource.role": "task",
                            "headwater.resource.name": "add",
                        },
                    ],
                    payload={
                        "intended": {"from": previous_type, "to": type_},
                        "initial_state": None,
                        "validated_state": state,
                        "task_run": {
                            "id": str(task_run_id),
                            "name": f"add-{task}",
                            "task_key": "add-1a2b",
                            "task_name": "add",
                            "flow_run_id": str(flow_run_id),
                            "tags": [],
                            "run_count": 1,
                        },
                    },
                )
            )
            previous, previous_type = state_id, type_
        task += 1
    return events[:count]


async def bench_direct(path: Path, events: list[Event], batch_size: int) -> float:
    async with await open_database(path) as database:
        writer = PersistenceWriter(database, batch_size=batch_size)
        started = time.perf_counter()
        for start in range(0, len(events), batch_size):
            await writer.write_events(events[start : start + batch_size])
        return time.perf_counter() - started


async def bench_bus(path: Path, events: list[Event], batch_size: int) -> float:
    bus = EventBus()
    async with await open_database(path) as database:
        writer = PersistenceWriter(database, batch_size=batch_size, batch_latency=0.05)
        subscription = bus.subscribe(lossless=True, buffer_size=10_000, name="persistence")
        elapsed: list[float] = []

        def publish() -> None:
            started = time.perf_counter()
            for event in events:
                bus.publish(event)
            bus.flush()
            elapsed.append(time.perf_counter() - started)
            subscription.close()

        async with anyio.create_task_group() as group:
            group.start_soon(writer.run, subscription)
            thread = threading.Thread(target=publish)
            thread.start()
            while thread.is_alive():
                await anyio.sleep(0.01)
        assert writer.committed_events == len(events), writer.committed_events
        return elapsed[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    events = make_events(args.events)
    for label, bench in (("direct", bench_direct), ("bus", bench_bus)):
        with tempfile.TemporaryDirectory() as directory:
            seconds = anyio.run(bench, Path(directory) / "bench.db", events, args.batch_size)
        print(
            f"persistence {label:6s}: {args.events} events in {seconds:.2f} s = "
            f"{args.events / seconds:,.0f} events/s (batch {args.batch_size})"
        )


if __name__ == "__main__":
    main()
