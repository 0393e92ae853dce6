from __future__ import annotations

import datetime
import logging
import random
import sqlite3
import threading
import uuid
from pathlib import Path

import anyio
import pytest
from storage_helpers import T0, plain_event, run_events, state_event

from headwater.events.bus import EventBus
from headwater.storage import batch
from headwater.storage.database import Database
from headwater.storage.queries import read_flow_run, read_flow_runs, read_task_run, read_task_runs
from headwater.storage.rows import RunLog, truncate_message
from headwater.storage.writer import PersistenceWriter


def count(path: Path, table: str) -> int:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        connection.close()


@pytest.mark.anyio
async def test_flow_run_row_follows_its_state_events(db: Database) -> None:
    run_id = uuid.uuid4()
    events = run_events(
        "flow-run", run_id, tags=["prod", "nightly"], parameters={"n": 3}, message="done"
    )
    await PersistenceWriter(db).write_events(events)

    detail = await read_flow_run(db, run_id)
    assert detail is not None
    run = detail.run
    assert (run.state.type, run.state.name) == ("COMPLETED", "Completed")
    assert run.state.id == events[-1].id
    assert run.flow_name == "etl" and run.name == "brave-otter" and run.flow_version == "1.0"
    assert run.start_time == T0 + datetime.timedelta(seconds=1)
    assert run.end_time == T0 + datetime.timedelta(seconds=2)
    assert run.created == T0
    assert run.parameters == {"n": 3}
    assert run.tags == ["nightly", "prod"]
    assert run.heartbeat is not None and run.pid is not None
    assert [(s.type, s.name) for s in detail.states] == [
        ("PENDING", "Pending"),
        ("RUNNING", "Running"),
        ("COMPLETED", "Completed"),
    ]
    assert [s.id for s in detail.states] == [event.id for event in events]
    assert count(db.path, "flows") == 1


@pytest.mark.anyio
async def test_states_split_across_batches_build_the_same_row(db: Database) -> None:
    run_id = uuid.uuid4()
    events = run_events(
        "flow-run",
        run_id,
        [
            ("Pending", "PENDING"),
            ("Running", "RUNNING"),
            ("Failed", "FAILED"),
            ("AwaitingRetry", "SCHEDULED"),
            ("Running", "RUNNING"),
            ("Completed", "COMPLETED"),
        ],
    )
    writer = PersistenceWriter(db)
    for event in events:
        await writer.write_events([event])
    run = (await read_flow_runs(db))[0]
    assert run.state.name == "Completed"
    assert run.start_time == T0 + datetime.timedelta(seconds=1)  # the first Running
    assert run.end_time == T0 + datetime.timedelta(seconds=5)


@pytest.mark.anyio
async def test_leaving_a_final_state_clears_end_time(db: Database) -> None:
    run_id = uuid.uuid4()
    events = run_events(
        "flow-run",
        run_id,
        [("Running", "RUNNING"), ("Failed", "FAILED"), ("AwaitingRetry", "SCHEDULED")],
    )
    await PersistenceWriter(db).write_events(events)
    run = (await read_flow_runs(db))[0]
    assert run.state.name == "AwaitingRetry" and run.end_time is None


@pytest.mark.anyio
async def test_redelivery_in_any_order_changes_nothing(db: Database) -> None:
    flow_run_id = uuid.uuid4()
    events = run_events("flow-run", flow_run_id)
    for index in range(5):
        events += run_events(
            "task-run",
            uuid.uuid4(),
            start=T0 + datetime.timedelta(milliseconds=10 * index),
            flow_run_id=flow_run_id,
            tags=["a"],
        )
    writer = PersistenceWriter(db)
    await writer.write_events(events)
    tables = ["events", "event_resources", "flow_runs", "task_runs", "flows"]
    before = {table: count(db.path, table) for table in tables}
    first = await read_flow_runs(db)
    first_tasks = await read_task_runs(db)

    shuffled = list(events)
    random.Random(7).shuffle(shuffled)
    await writer.write_events(shuffled)
    await writer.write_events(shuffled[:4])

    assert {table: count(db.path, table) for table in tables} == before
    assert before["events"] == 18 and before["task_runs"] == 5
    # Heartbeats move on with every write; everything else stays as it was.
    assert [r.state for r in await read_flow_runs(db)] == [r.state for r in first]
    assert await read_task_runs(db) == first_tasks
    for task_run in first_tasks:
        detail = await read_task_run(db, task_run.id)
        assert detail is not None and len(detail.states) == 3


@pytest.mark.anyio
async def test_older_state_in_the_same_batch_does_not_win(db: Database) -> None:
    run_id = uuid.uuid4()
    pending, running, completed = run_events("flow-run", run_id)
    await PersistenceWriter(db).write_events([completed, pending, running])
    run = (await read_flow_runs(db))[0]
    assert run.state.name == "Completed"
    assert run.start_time == running.occurred and run.created == pending.occurred


@pytest.mark.anyio
async def test_task_runs_record_their_flow_run_and_refresh_its_heartbeat(db: Database) -> None:
    flow_run_id, task_run_id = uuid.uuid4(), uuid.uuid4()
    writer = PersistenceWriter(db)
    await writer.write_events(run_events("flow-run", flow_run_id)[:2])
    beat_before = (await read_flow_runs(db))[0].heartbeat

    writer.clock = lambda: (
        datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    )
    await writer.write_events(run_events("task-run", task_run_id, flow_run_id=flow_run_id))

    detail = await read_task_run(db, task_run_id)
    assert detail is not None
    assert detail.run.flow_run_id == flow_run_id
    assert detail.run.flow_name == "etl"
    assert detail.run.task_key == "extract-1a2b" and detail.run.task_name == "extract"
    assert [s.name for s in detail.states] == ["Pending", "Running", "Completed"]
    beat_after = (await read_flow_runs(db))[0].heartbeat
    assert beat_before is not None and beat_after is not None
    assert beat_after - beat_before >= datetime.timedelta(minutes=59)


@pytest.mark.anyio
async def test_other_events_only_reach_the_event_tables(db: Database) -> None:
    await PersistenceWriter(db).write_events(
        [
            plain_event(
                "order.placed",
                "shop.order.1",
                T0,
                related=[
                    {
                        "headwater.resource.id": "shop.customer.9",
                        "headwater.resource.role": "customer",
                    }
                ],
            ),
            # Looks like a flow-run resource but carries no state: not a state change.
            plain_event("headwater.flow-run.heartbeat", f"headwater.flow-run.{uuid.uuid4()}", T0),
        ]
    )
    assert count(db.path, "events") == 2
    assert count(db.path, "event_resources") == 1
    assert count(db.path, "flow_runs") == 0 and count(db.path, "task_runs") == 0


def test_long_messages_are_truncated_with_a_marker() -> None:
    assert truncate_message("short", 10) == "short"
    cut = truncate_message("x" * 25, 10)
    assert cut == "x" * 10 + "... [truncated 15 characters]"


@pytest.mark.anyio
async def test_logs_from_other_threads_are_written_truncated_never_dropped(db: Database) -> None:
    run_id = uuid.uuid4()
    bus = EventBus()
    subscription = bus.subscribe(lossless=True, name="persistence")
    writer = PersistenceWriter(db, batch_latency=0.01, max_log_length=50, log_buffer_size=10)

    def log_from_thread() -> None:
        for index in range(40):
            writer.enqueue_log(
                RunLog(
                    flow_run_id=run_id,
                    task_run_id=None,
                    name="headwater.flow_runs",
                    level=logging.INFO,
                    message=("y" * 80) if index == 0 else f"line {index}",
                    timestamp=T0 + datetime.timedelta(seconds=index),
                )
            )

    async with anyio.create_task_group() as group:
        group.start_soon(writer.run, subscription)
        # 40 records through a buffer of 10: the thread must wait for room, not drop.
        await anyio.to_thread.run_sync(log_from_thread)
        subscription.close()

    assert writer.lost_logs == 0
    await PersistenceWriter(db).write_events(run_events("flow-run", run_id))
    detail = await read_flow_run(db, run_id)
    assert detail is not None
    assert len(detail.logs) == 40
    assert detail.logs[0].message == "y" * 50 + "... [truncated 30 characters]"
    assert [entry.message for entry in detail.logs[1:3]] == ["line 1", "line 2"]


@pytest.mark.anyio
async def test_bus_flush_returns_after_the_commit(db: Database) -> None:
    bus = EventBus()
    subscription = bus.subscribe(lossless=True, name="persistence")
    # A long latency: only the flush makes the writer take a batch early.
    writer = PersistenceWriter(db, batch_latency=30.0)
    run_id = uuid.uuid4()
    results: list[tuple[bool, int]] = []

    def engine() -> None:
        for event in run_events("flow-run", run_id):
            bus.publish(event)
        flushed = bus.flush(timeout=10)
        # Read on a separate connection, right after flush() returned.
        results.append((flushed, count(db.path, "events")))

    async with anyio.create_task_group() as group:
        group.start_soon(writer.run, subscription)
        with anyio.fail_after(10):
            await anyio.to_thread.run_sync(engine)
        subscription.close()

    assert results == [(True, 3)]
    assert writer.committed_events == 3


@pytest.mark.anyio
async def test_a_batch_that_cannot_be_written_is_acked_counted_and_reported_once(
    db: Database, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = EventBus()
    subscription = bus.subscribe(lossless=True, name="persistence")
    writer = PersistenceWriter(db, batch_latency=0.01)
    # The writer's batch connection believes the file cannot grow: every batch fails.
    pragmas = batch.connection_pragmas
    monkeypatch.setattr(
        batch,
        "connection_pragmas",
        lambda timeout: [*pragmas(timeout), "PRAGMA max_page_count = 1"],
    )
    many = [e for _ in range(20) for e in run_events("flow-run", uuid.uuid4())]

    def engine() -> tuple[bool, bool]:
        for event in many:
            bus.publish(event)
        first = bus.flush(timeout=10)
        for event in many[:30]:
            bus.publish(event)
        return first, bus.flush(timeout=10)

    with caplog.at_level(logging.ERROR, logger="headwater.storage"):
        async with anyio.create_task_group() as group:
            group.start_soon(writer.run, subscription)
            with anyio.fail_after(10):
                # publishers never wait on the broken disk, and each flush reports the loss
                assert await anyio.to_thread.run_sync(engine) == (False, False)
            subscription.close()

    assert writer.error is not None and "disk is full" in str(writer.error)
    assert writer.lost_events == 90
    errors = [r for r in caplog.records if r.name == "headwater.storage"]
    assert len(errors) == 1 and str(db.path) in errors[0].getMessage()


@pytest.mark.anyio
async def test_state_event_built_by_hand_with_a_state_id_differing_from_event_id(
    db: Database,
) -> None:
    run_id = uuid.uuid4()
    event = state_event("flow-run", run_id, "Running", "RUNNING", occurred=T0)
    event.payload["validated_state"]["id"] = str(uuid.uuid4())
    await PersistenceWriter(db).write_events([event])
    run = (await read_flow_runs(db))[0]
    assert str(run.state.id) == event.payload["validated_state"]["id"]


@pytest.mark.anyio
async def test_threads_enqueueing_logs_concurrently_lose_nothing(db: Database) -> None:
    run_id = uuid.uuid4()
    bus = EventBus()
    subscription = bus.subscribe(lossless=True, name="persistence")
    writer = PersistenceWriter(db, batch_latency=0.005, log_buffer_size=50)

    def log_many(thread: int) -> None:
        for index in range(100):
            writer.enqueue_log(
                RunLog(
                    flow_run_id=run_id,
                    task_run_id=None,
                    name="t",
                    level=20,
                    message=f"{thread}-{index}",
                    timestamp=T0,
                )
            )

    async with anyio.create_task_group() as group:
        group.start_soon(writer.run, subscription)
        threads = [threading.Thread(target=log_many, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            await anyio.sleep(0.01)
        subscription.close()

    assert writer.lost_logs == 0
    assert count(db.path, "logs") == 400


@pytest.mark.anyio
async def test_batches_stay_within_the_batch_size_and_commit_everything_in_order(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = EventBus()
    subscription = bus.subscribe(lossless=True, name="persistence", materialise=False)
    writer = PersistenceWriter(db, batch_size=50, batch_latency=0.001)
    sizes: list[int] = []
    committed = PersistenceWriter._committed

    def counting(self, subscription, delivered, events, error):  # type: ignore[no-untyped-def]
        sizes.append(events)
        committed(self, subscription, delivered, events, error)

    monkeypatch.setattr(PersistenceWriter, "_committed", counting)
    flow_run_id = uuid.uuid4()
    events = [
        e for i in range(100) for e in run_events("task-run", uuid.uuid4(), flow_run_id=flow_run_id)
    ]

    def engine() -> bool:
        for event in events:
            bus.publish(event)
        return bus.flush(timeout=10)

    async with anyio.create_task_group() as group:
        group.start_soon(writer.run, subscription)
        with anyio.fail_after(10):
            assert await anyio.to_thread.run_sync(engine)
        subscription.close()

    assert sum(sizes) == writer.committed_events == len(events) == count(db.path, "events")
    assert max(sizes) <= 50 and len(sizes) >= len(events) // 50
    assert count(db.path, "task_runs") == 100
