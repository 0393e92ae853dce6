from __future__ import annotations

import datetime
import sqlite3
import uuid
from pathlib import Path

import pytest
from storage_helpers import T0, plain_event, run_events

from headwater.storage.database import Database
from headwater.storage.queries import read_flow_run
from headwater.storage.retention import prune
from headwater.storage.rows import RunLog
from headwater.storage.writer import PersistenceWriter

DAY = datetime.timedelta(days=1)
NOW = T0 + 40 * DAY
TABLES = ("flow_runs", "task_runs", "events", "event_resources", "logs")


def counts(path: Path) -> dict[str, int]:
    connection = sqlite3.connect(path)
    try:
        return {t: connection.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        connection.close()


async def fill(db: Database, start: datetime.datetime, runs: int) -> list[uuid.UUID]:
    writer = PersistenceWriter(db)
    ids = []
    events = []
    for index in range(runs):
        run_id = uuid.uuid4()
        ids.append(run_id)
        moment = start + datetime.timedelta(minutes=index)
        events += run_events("flow-run", run_id, start=moment, tags=["t"])
        events += run_events("task-run", uuid.uuid4(), start=moment, flow_run_id=run_id)
        events.append(plain_event("ping", "probe.1", moment))
        writer.enqueue_log(
            RunLog(
                flow_run_id=run_id,
                task_run_id=None,
                name="x",
                level=20,
                message="hello",
                timestamp=moment,
            )
        )
    await writer.write_events(events)
    await writer.flush_logs()
    return ids


@pytest.mark.anyio
async def test_prune_removes_only_what_is_older_in_small_batches(db: Database) -> None:
    await fill(db, T0, runs=25)  # 40 days before NOW
    recent = await fill(db, NOW - DAY, runs=3)
    before = counts(db.path)

    batches: list[int] = []
    write = db.write

    async def counting_write(work):  # type: ignore[no-untyped-def]
        batches.append(1)
        return await write(work)

    db.write = counting_write  # type: ignore[method-assign]
    result = await prune(db, datetime.timedelta(days=30), batch_size=10, now=NOW)

    after = counts(db.path)
    assert after == {
        "flow_runs": 3,
        "task_runs": 3,
        "events": 21,
        # per run: 3 flow-run events x (flow, tag) + 3 task-run events x (flow-run, flow, task)
        "event_resources": 3 * (3 * 2 + 3 * 3),
        "logs": 3,
    }
    assert result.flow_runs == 25 and result.task_runs == 25 and result.logs == 25
    assert result.events == 25 * 7
    assert result.event_resources == before["event_resources"] - after["event_resources"]
    assert result.total == sum(before.values()) - sum(after.values())
    # 175 events in batches of 10 alone take 18 transactions: pruning never holds the lock long.
    assert len(batches) >= 18 + 3 + 3 + 3
    remaining = sqlite3.connect(db.path)
    try:
        ids = {row[0] for row in remaining.execute("SELECT id FROM flow_runs")}
    finally:
        remaining.close()
    assert ids == {str(run_id) for run_id in recent}


@pytest.mark.anyio
async def test_a_run_still_changing_state_is_kept_with_its_history(db: Database) -> None:
    run_id = uuid.uuid4()
    pending, running, completed = run_events("flow-run", run_id, start=T0)
    completed = run_events("flow-run", run_id, start=NOW)[2]
    old_task = run_events("task-run", uuid.uuid4(), start=T0)
    await PersistenceWriter(db).write_events([pending, running, completed, *old_task])
    result = await prune(db, datetime.timedelta(days=30), batch_size=2, now=NOW)
    assert result.flow_runs == 0 and counts(db.path)["flow_runs"] == 1
    # its old state changes are its state history: they stay; the old task's events go
    assert result.events == 3 and result.task_runs == 1
    detail = await read_flow_run(db, run_id)
    assert detail is not None
    assert [state.id for state in detail.states] == [pending.id, running.id, completed.id]


@pytest.mark.anyio
async def test_prune_accepts_a_cutoff_time_and_is_idempotent(db: Database) -> None:
    await fill(db, T0, runs=2)
    first = await prune(db, T0 + DAY)
    second = await prune(db, T0 + DAY)
    assert first.total > 0 and second.total == 0
    assert sum(counts(db.path).values()) == 0
