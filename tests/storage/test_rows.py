from __future__ import annotations

import asyncio
import datetime
import itertools
import sqlite3
import uuid
import zoneinfo
from pathlib import Path
from typing import Any

import pytest
from storage_helpers import T0, plain_event, run_events

from headwater import flow, tags, task
from headwater.engine.states import StateType
from headwater.engine.transitions import RunIdentity, TransitionRecord
from headwater.events.bus import get_bus
from headwater.settings import temporary_settings
from headwater.storage import batch
from headwater.storage.database import open_database
from headwater.storage.rows import BatchRows, build_rows

TABLES = {
    "events": "id",
    "event_resources": "resource_id, occurred, event_id, role",
    "flows": "id",
    "flow_runs": "id",
    "task_runs": "id",
}


async def _store(path: Path, rows: BatchRows) -> dict[str, list[Any]]:
    async with await open_database(path) as database:
        await database.write_statement(batch.INSERT_BATCH, rows.parameters())
    connection = sqlite3.connect(path)
    try:
        return {
            table: connection.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
            for table, order in TABLES.items()
        }
    finally:
        connection.close()


def _engine_records() -> list[Any]:
    """Transition records of real runs: a subflow, retries, a failure, tags, parameters."""
    attempts: list[int] = []

    @task(retries=1, retry_delay_seconds=0)
    async def flaky(x: int) -> int:
        attempts.append(x)
        if len(attempts) == 1:
            raise ValueError('boom "quoted" \u2603')
        return x

    @task(tags=["db"])
    async def double(x: int) -> int:
        return 2 * x

    @flow(flow_run_name="child-run")
    async def child(x: int) -> int:
        return await double(x)

    @flow(flow_run_name="parent-run")
    async def parent(n: int, label: str = "caf\u00e9") -> int:
        values = await asyncio.gather(*[double(i) for i in range(n)], flaky(1), child(3))
        return sum(values)

    subscription = get_bus().subscribe(buffer_size=10_000, materialise=False)
    try:
        # no persistence of their own: nothing encodes the records before the test does
        with tags("etl"), temporary_settings(events_enabled=False):
            asyncio.run(parent(4))

        async def drain() -> list[Any]:
            return await subscription.get_batch(max_items=10_000, max_latency=0)

        return asyncio.run(drain())
    finally:
        subscription.close()


def test_engine_records_and_their_events_make_the_same_rows(tmp_path: Path) -> None:
    records = _engine_records()
    assert len(records) >= 20
    now = datetime.datetime(2024, 5, 1, tzinfo=datetime.timezone.utc)
    generic = build_rows([record.to_event() for record in records], now)
    fast = build_rows(records, now)

    stored_generic = asyncio.run(_store(tmp_path / "generic.db", generic))
    stored_fast = asyncio.run(_store(tmp_path / "fast.db", fast))

    assert stored_fast == stored_generic
    assert len(stored_fast["events"]) == len(records)
    assert {row[0] for row in stored_fast["task_runs"]} and len(stored_fast["flow_runs"]) == 2


@pytest.mark.parametrize("cuts", [(1,), (5, 6), (3, 10, 11, 20)])
def test_rows_built_in_parts_and_joined_store_the_same(
    tmp_path: Path, cuts: tuple[int, ...]
) -> None:
    flow_run_id = uuid.uuid4()
    events = run_events("flow-run", flow_run_id, tags=["a"])
    for index in range(4):
        events += run_events(
            "task-run",
            uuid.uuid4(),
            start=T0 + datetime.timedelta(milliseconds=index),
            flow_run_id=flow_run_id,
        )
    events.insert(7, plain_event("order.placed", "shop.order.1", T0))
    events.sort(key=lambda event: event.occurred)  # the runs interleave, across the cuts
    now = T0 + datetime.timedelta(hours=1)

    bounds = [0, *cuts, len(events)]
    parts = [events[start:end] for start, end in itertools.pairwise(bounds)]
    joined = build_rows(parts[0], now, offset=7)
    for part in parts[1:]:
        joined.extend(build_rows(part, now, offset=joined.offset))
    whole = build_rows(events, now)

    assert len(joined) == len(whole) == len(events)
    stored_joined = asyncio.run(_store(tmp_path / "joined.db", joined))
    stored_whole = asyncio.run(_store(tmp_path / "whole.db", whole))
    assert stored_joined == stored_whole


def test_extend_takes_only_the_rows_that_follow() -> None:
    now = T0
    first = build_rows(run_events("flow-run", uuid.uuid4()), now)
    with pytest.raises(ValueError, match="do not follow"):
        first.extend(build_rows(run_events("flow-run", uuid.uuid4()), now))


def test_records_in_other_time_zones_make_the_same_rows(tmp_path: Path) -> None:
    zones = [
        datetime.timezone.utc,
        zoneinfo.ZoneInfo("Europe/Paris"),
        datetime.timezone(datetime.timedelta(seconds=30)),
    ]
    identity = RunIdentity("task-run", uuid.uuid4(), "t-1", "etl", task_key="t-1a", task_name="t")
    records = []
    previous = None
    for index, zone in enumerate(zones * 2):
        moment = datetime.datetime(2024, 5, 1, 12, 0, index, 0 if index % 2 else 5, tzinfo=zone)
        current = (uuid.uuid4(), StateType.RUNNING, "Running", None, moment)
        records.append(TransitionRecord(identity, 1, previous, current))
        previous = current
    now = datetime.datetime(2024, 5, 2, tzinfo=datetime.timezone.utc)
    generic = build_rows([record.to_event() for record in records], now)
    fast = build_rows(records, now)
    stored = asyncio.run(_store(tmp_path / "fast.db", fast))
    assert stored == asyncio.run(_store(tmp_path / "generic.db", generic))
    assert {row[1][-6:] for row in stored["events"]} == {"+00:00"}
