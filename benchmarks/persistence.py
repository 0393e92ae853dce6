"""How fast the persistence writer commits events: prints events/s.

Two kinds of input, each written to a fresh SQLite file in a temporary directory:

- ``events``: task-run state events built as :class:`Event` objects (Pending, Running,
  Completed for each task, with flow, flow-run and task related resources), as another
  process or the server would hand them over;
- ``records``: the engine's own transition records, captured from real flow runs (an async
  flow gathering no-op tasks), exactly what persistence receives on the bus from the engine.
  Each record is written before anything encodes it, as in a real run.

And two ways of writing them:

- ``direct``: ``PersistenceWriter.write_events`` in batches of ``--batch-size`` (build, then
  commit, one batch after the other);
- ``bus``: published on an ``EventBus`` by another thread and consumed by
  ``PersistenceWriter.run`` through a lossless subscription (the way persistence runs),
  timed until ``bus.flush()`` returns, i.e. until everything is committed.

Run: ``.venv/bin/python benchmarks/persistence.py [--events 100000] [--batch-size N]
[--repeat 3]`` (the batch size defaults to ``HEADWATER_DATABASE_BATCH_SIZE``'s default).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import msgspec

from headwater.events.bus import EventBus
from headwater.events.schema import Event
from headwater.ids import new_uuid
from headwater.settings import Settings
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


def make_records(count: int) -> list[Any]:
    """``count`` transition records published by real flow runs.

    The flows run with ``events_enabled=False`` (no persistence of their own), and a
    subscription on the process bus keeps every record as the engine published it.
    """
    from headwater import flow, task
    from headwater.events.bus import get_bus
    from headwater.settings import temporary_settings

    @task
    async def noop(i: int) -> int:
        return i

    @flow
    async def gather_noops(n: int) -> None:
        await asyncio.gather(*[noop(i) for i in range(n)])

    records: list[Any] = []
    with (
        tempfile.TemporaryDirectory() as home,
        temporary_settings(home=Path(home), events_enabled=False),
    ):
        bus = get_bus()
        subscription = bus.subscribe(buffer_size=count + 10_000, materialise=False)
        tasks = max(1, count // 3)
        asyncio.run(gather_noops(tasks))

        async def drain() -> None:
            while subscription.pending:
                records.extend(await subscription.get_batch(max_items=10_000, max_latency=0))

        asyncio.run(drain())
        subscription.close()
    return records[:count]


async def bench_direct(path: Path, items: Sequence[Any], batch_size: int) -> float:
    async with await open_database(path) as database:
        writer = PersistenceWriter(database, batch_size=batch_size)
        started = time.perf_counter()
        for start in range(0, len(items), batch_size):
            await writer.write_events(items[start : start + batch_size])
        return time.perf_counter() - started


async def bench_bus(path: Path, items: Sequence[Any], batch_size: int) -> float:
    bus = EventBus()
    async with await open_database(path) as database:
        writer = PersistenceWriter(database, batch_size=batch_size, batch_latency=0.05)
        # as persistence subscribes: records arrive as the engine published them
        subscription = bus.subscribe(
            lossless=True, buffer_size=10_000, name="persistence", materialise=False
        )
        elapsed: list[float] = []

        def publish() -> None:
            started = time.perf_counter()
            for item in items:
                bus.publish(item)
            bus.flush()
            elapsed.append(time.perf_counter() - started)
            subscription.close()

        async with anyio.create_task_group() as group:
            group.start_soon(writer.run, subscription)
            thread = threading.Thread(target=publish)
            thread.start()
            while thread.is_alive():
                await anyio.sleep(0.01)
        assert writer.committed_events == len(items), writer.committed_events
        return elapsed[0]


def _default_batch_size() -> int:
    fields = msgspec.structs.fields(Settings)
    return next(int(field.default) for field in fields if field.name == "database_batch_size")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=_default_batch_size())
    parser.add_argument("--repeat", type=int, default=1, help="best of this many runs")
    args = parser.parse_args()
    os.environ.setdefault("HEADWATER_LOGGING_TO_CONSOLE", "false")
    inputs = {"events": make_events, "records": make_records}
    for kind, make in inputs.items():
        for label, bench in (("direct", bench_direct), ("bus", bench_bus)):
            best = float("inf")
            for _ in range(args.repeat):
                items = make(args.events)  # records are written once: fresh ones each run
                with tempfile.TemporaryDirectory() as directory:
                    seconds = anyio.run(bench, Path(directory) / "bench.db", items, args.batch_size)
                best = min(best, seconds)
            print(
                f"persistence {kind:7s} {label:6s}: {args.events} events in {best:.2f} s = "
                f"{args.events / best:,.0f} events/s (batch {args.batch_size})"
            )


if __name__ == "__main__":
    main()
