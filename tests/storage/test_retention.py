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
    # 25 task runs, 25 flow runs and 25 other events, at most 10 of each per transaction:
    # pruning never holds the lock long.
    assert len(batches) >= 3 + 3 + 3
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


@pytest.mark.anyio
async def test_a_run_that_has_not_ended_is_never_pruned_however_old(db: Database) -> None:
    running = uuid.uuid4()
    waiting_task = uuid.uuid4()
    finished_flow = uuid.uuid4()
    open_task = uuid.uuid4()
    started = [("Pending", "PENDING"), ("Running", "RUNNING")]
    events = [
        *run_events("flow-run", running, started, start=T0),
        *run_events(
            "task-run", waiting_task, [("Pending", "PENDING")], start=T0, flow_run_id=running
        ),
        # a final flow run that still has a task run open is not over either
        *run_events("flow-run", finished_flow, start=T0),
        *run_events("task-run", open_task, started, start=T0, flow_run_id=finished_flow),
    ]
    await PersistenceWriter(db).write_events(events)
    result = await prune(db, datetime.timedelta(days=30), now=NOW)
    assert result.total == 0
    assert counts(db.path)["flow_runs"] == 2 and counts(db.path)["task_runs"] == 2
    for run_id in (running, finished_flow):
        detail = await read_flow_run(db, run_id)
        assert detail is not None and detail.states


@pytest.mark.anyio
async def test_a_prune_cut_off_half_way_leaves_no_run_without_its_history(db: Database) -> None:
    await fill(db, T0, runs=12)
    write = db.write
    calls = {"n": 0}

    async def dying_write(work):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:  # the process exits after one batch
            raise RuntimeError("killed")
        return await write(work)

    db.write = dying_write  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await prune(db, datetime.timedelta(days=30), batch_size=5, now=NOW)
    connection = sqlite3.connect(db.path)
    try:
        runs = connection.execute(
            "SELECT 'headwater.flow-run.' || id FROM flow_runs"
            " UNION ALL SELECT 'headwater.task-run.' || id FROM task_runs"
        ).fetchall()
        without = [
            run
            for (run,) in runs
            if not connection.execute(
                "SELECT 1 FROM events WHERE resource_id = ?", (run,)
            ).fetchone()
        ]
        remaining_tasks = connection.execute("SELECT count(*) FROM task_runs").fetchone()[0]
    finally:
        connection.close()
    assert remaining_tasks == 12 - 5  # one batch went, with its events
    assert without == []
    db.write = write  # type: ignore[method-assign]
    await prune(db, datetime.timedelta(days=30), batch_size=5, now=NOW)
    assert counts(db.path)["flow_runs"] == 0 and counts(db.path)["events"] == 0
