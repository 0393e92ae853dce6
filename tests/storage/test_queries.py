from __future__ import annotations

import datetime
import logging
import uuid

import pytest
from storage_helpers import FLOW_STATES, T0, run_events

from headwater.storage.database import Database
from headwater.storage.queries import (
    read_flow_run,
    read_flow_runs,
    read_logs,
    read_task_run,
    read_task_runs,
)
from headwater.storage.rows import RunLog
from headwater.storage.writer import PersistenceWriter

HOUR = datetime.timedelta(hours=1)
FAILING = [("Pending", "PENDING"), ("Running", "RUNNING"), ("Failed", "FAILED")]
TIMING_OUT = [("Pending", "PENDING"), ("Running", "RUNNING"), ("TimedOut", "FAILED")]


@pytest.fixture
async def history(db: Database) -> dict[str, uuid.UUID]:
    """Four flow runs an hour apart, a subflow, and task runs of the first."""
    ids = {name: uuid.uuid4() for name in ("ok", "failed", "timed_out", "other", "child")}
    events = run_events("flow-run", ids["ok"], start=T0, tags=["prod"])
    events += run_events("flow-run", ids["failed"], FAILING, start=T0 + HOUR, tags=["prod", "eu"])
    events += run_events("flow-run", ids["timed_out"], TIMING_OUT, start=T0 + 2 * HOUR)
    events += run_events("flow-run", ids["other"], start=T0 + 3 * HOUR, flow_name="report")
    events += run_events(
        "flow-run", ids["child"], start=T0 + 4 * HOUR, parent_flow_run_id=ids["ok"]
    )
    for index in range(3):
        task_id = ids[f"task{index}"] = uuid.uuid4()
        events += run_events(
            "task-run",
            task_id,
            FAILING if index == 2 else FLOW_STATES,
            start=T0 + datetime.timedelta(minutes=index),
            flow_run_id=ids["ok"],
            tags=["io"] if index else [],
        )
    events += run_events("task-run", uuid.uuid4(), flow_run_id=ids["failed"], start=T0 + HOUR)
    writer = PersistenceWriter(db)
    await writer.write_events(events)
    return ids


@pytest.mark.anyio
async def test_flow_runs_newest_first_with_limit_and_offset(
    db: Database, history: dict[str, uuid.UUID]
) -> None:
    runs = await read_flow_runs(db)
    assert [r.id for r in runs] == [
        history[n] for n in ("child", "other", "timed_out", "failed", "ok")
    ]
    page = await read_flow_runs(db, limit=2, offset=1, order="ASC")
    assert [r.id for r in page] == [history["failed"], history["timed_out"]]


@pytest.mark.anyio
async def test_flow_run_filters_combine(db: Database, history: dict[str, uuid.UUID]) -> None:
    assert {r.id for r in await read_flow_runs(db, state_type="FAILED")} == {
        history["failed"],
        history["timed_out"],
    }
    assert [r.id for r in await read_flow_runs(db, state_name="TimedOut")] == [history["timed_out"]]
    assert [r.id for r in await read_flow_runs(db, flow_name="report")] == [history["other"]]
    assert [r.id for r in await read_flow_runs(db, tags=["prod", "eu"])] == [history["failed"]]
    assert {r.id for r in await read_flow_runs(db, tags=["prod"])} == {
        history["ok"],
        history["failed"],
    }
    window = await read_flow_runs(db, since=T0 + HOUR, until=T0 + 2 * HOUR)
    assert {r.id for r in window} == {history["failed"], history["timed_out"]}
    assert [r.id for r in await read_flow_runs(db, parent_flow_run_id=history["ok"])] == [
        history["child"]
    ]
    assert await read_flow_runs(db, state_type=["FAILED"], flow_name="report") == []


@pytest.mark.anyio
async def test_task_runs_by_flow_run_and_state(db: Database, history: dict[str, uuid.UUID]) -> None:
    of_first = await read_task_runs(db, flow_run_id=history["ok"], order="ASC")
    assert [r.id for r in of_first] == [history["task0"], history["task1"], history["task2"]]
    failed = await read_task_runs(db, state_type="FAILED")
    assert [r.id for r in failed] == [history["task2"]]
    assert len(await read_task_runs(db, tags=["io"])) == 2
    assert len(await read_task_runs(db)) == 4
    assert len(await read_task_runs(db, flow_name="etl", limit=3)) == 3


@pytest.mark.anyio
async def test_one_run_with_history_and_logs(db: Database, history: dict[str, uuid.UUID]) -> None:
    writer = PersistenceWriter(db)
    for index, task in enumerate((None, history["task1"])):
        writer.enqueue_log(
            RunLog(
                flow_run_id=history["ok"],
                task_run_id=task,
                name="headwater.task_runs" if task else "headwater.flow_runs",
                level=logging.WARNING if task else logging.INFO,
                message=f"message {index}",
                timestamp=T0 + datetime.timedelta(seconds=index),
            )
        )
    await writer.flush_logs()

    detail = await read_flow_run(db, history["ok"])
    assert detail is not None
    assert [s.name for s in detail.states] == ["Pending", "Running", "Completed"]
    assert [log.message for log in detail.logs] == ["message 0", "message 1"]
    task = await read_task_run(db, history["task1"])
    assert task is not None and [log.message for log in task.logs] == ["message 1"]
    assert [log.message for log in await read_logs(db, min_level=logging.WARNING)] == ["message 1"]
    assert await read_flow_run(db, uuid.uuid4()) is None
    assert await read_task_run(db, uuid.uuid4()) is None
