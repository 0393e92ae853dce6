from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import anyio
import pytest
from storage_helpers import run_events

from headwater.events.bus import EventBus
from headwater.events.filters import EventFilter, EventNameFilter
from headwater.storage.crashes import mark_crashed_runs, process_alive
from headwater.storage.database import Database, open_database
from headwater.storage.event_queries import read_events
from headwater.storage.queries import read_flow_run
from headwater.storage.writer import PersistenceWriter

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
RUNNING = [("Pending", "PENDING"), ("Running", "RUNNING")]

CHILD = textwrap.dedent(
    """
    import sys, time, uuid, anyio
    from headwater.storage.database import open_database
    from headwater.storage.writer import PersistenceWriter
    from storage_helpers import run_events

    async def main():
        async with await open_database(sys.argv[1]) as db:
            events = run_events(
                "flow-run", uuid.UUID(sys.argv[2]), [("Pending", "PENDING"), ("Running", "RUNNING")]
            )
            await PersistenceWriter(db).write_events(events)
            print(events[-1].id, flush=True)

    anyio.run(main)
    time.sleep(60)  # "running the flow" until killed
    """
)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.anyio
async def test_a_killed_run_is_marked_crashed_with_a_crashed_event(db_path: Path) -> None:
    run_id = uuid.uuid4()
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db_path), str(run_id)],
        stdout=subprocess.PIPE,
        env=child_env(),
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            running_state_id = uuid.UUID(child.stdout.readline().strip())
            async with await open_database(db_path) as db:
                # Still alive: not crashed.
                assert await mark_crashed_runs(db, None) == []
                child.send_signal(signal.SIGKILL)
                child.wait(10)

                bus = EventBus()
                subscription = bus.subscribe(lossless=True, name="test")
                crashed = await mark_crashed_runs(db, bus)

                assert len(crashed) == 1
                event = crashed[0]
                assert event.event == "headwater.flow-run.Crashed"
                assert event.resource_id == f"headwater.flow-run.{run_id}"
                assert event.follows == running_state_id
                assert event.payload["intended"] == {"from": "RUNNING", "to": "CRASHED"}
                assert str(child.pid) in event.payload["validated_state"]["message"]
                with anyio.fail_after(5):
                    delivered = await subscription.get_batch(max_items=10, max_latency=0)
                assert [e.id for e in delivered] == [event.id]
                subscription.close()

                detail = await read_flow_run(db, run_id)
                assert detail is not None
                assert (detail.run.state.type, detail.run.state.name) == ("CRASHED", "Crashed")
                assert detail.run.end_time is not None
                assert [s.name for s in detail.states] == ["Pending", "Running", "Crashed"]
                stored = await read_events(
                    db, EventFilter(event=EventNameFilter(name=["headwater.flow-run.Crashed"]))
                )
                assert [e.id for e in stored.events] == [event.id]

                # Writing the published event again (as the persistence writer does) adds nothing.
                await PersistenceWriter(db).write_events(crashed)
                assert len((await read_flow_run(db, run_id)).states) == 3  # type: ignore[union-attr]
                assert await mark_crashed_runs(db, None) == []
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()


@pytest.mark.anyio
async def test_two_sweepers_mark_a_dead_run_once(db_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)
    run_id = uuid.uuid4()
    async with await open_database(db_path) as first, await open_database(db_path) as second:
        await PersistenceWriter(first).write_events(
            run_events("flow-run", run_id, RUNNING, pid=pid)
        )
        results: list[int] = []

        async def sweep(db: Database) -> None:
            results.append(len(await mark_crashed_runs(db, None)))

        async with anyio.create_task_group() as group:
            group.start_soon(sweep, first)
            group.start_soon(sweep, second)
        assert sorted(results) == [0, 1]
        detail = await read_flow_run(first, run_id)
        assert detail is not None and [s.name for s in detail.states][-1] == "Crashed"
        assert len(detail.states) == 3


@pytest.mark.anyio
async def test_runs_of_other_hosts_need_a_stale_heartbeat(db: Database) -> None:
    run_id = uuid.uuid4()
    await PersistenceWriter(db).write_events(
        run_events("flow-run", run_id, RUNNING, hostname="elsewhere", pid=1)
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    assert await mark_crashed_runs(db, None) == []
    fresh = datetime.timedelta(hours=1)
    assert await mark_crashed_runs(db, None, stale_after=fresh) == []
    later = now + datetime.timedelta(hours=2)
    crashed = await mark_crashed_runs(db, None, now=later, stale_after=fresh)
    assert [e.resource_id for e in crashed] == [f"headwater.flow-run.{run_id}"]
    assert "has not been heard from" in crashed[0].payload["validated_state"]["message"]


@pytest.mark.anyio
async def test_finished_runs_and_live_processes_are_left_alone(db: Database) -> None:
    await PersistenceWriter(db).write_events(
        run_events("flow-run", uuid.uuid4(), pid=999_999_999)  # Completed: nothing to do
        + run_events("flow-run", uuid.uuid4(), RUNNING, pid=os.getpid())
        + run_events("flow-run", uuid.uuid4(), RUNNING, pid=os.getppid())
    )
    assert await mark_crashed_runs(db, None) == []


def test_process_alive() -> None:
    assert process_alive(os.getpid())
    assert not process_alive(0)
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert not process_alive(int(done.stdout))


FLOW_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from headwater import flow, task

    ready = Path(sys.argv[1])

    @task
    def step(i: int) -> int:
        if i == 1:
            ready.write_text("go")
        time.sleep(60)
        return i

    @flow
    def stuck() -> None:
        for future in [step.submit(i) for i in range(6)]:
            future.result()

    stuck()
    """
)


def test_kill_9_closes_the_whole_run_tree_and_the_cli_sees_it_at_once(tmp_path: Path) -> None:
    import json
    import time

    ready = tmp_path / "ready"
    env = dict(
        os.environ,
        HEADWATER_HOME=str(tmp_path),
        HEADWATER_LOGGING_TO_CONSOLE="false",
        HEADWATER_TASKS_RUNNER_THREAD_POOL_MAX_WORKERS="2",
    )
    child = subprocess.Popen([sys.executable, "-c", FLOW_CHILD, str(ready)], env=env)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert child.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.3)  # a batch of its events is committed (batch latency 0.1 s)
    child.kill()
    child.wait(10)

    def cli(*args: str) -> list[dict]:
        done = subprocess.run(
            [sys.executable, "-m", "headwater", *args, "--output", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]

    flows = cli("flow-run", "ls")
    assert [f["state"]["name"] for f in flows] == ["Crashed"]
    assert str(child.pid) in flows[0]["state"]["message"]
    tasks = cli("task-run", "ls")
    assert len(tasks) == 6
    assert {t["state"]["name"] for t in tasks} == {"Crashed"}  # two were running, four queued
    assert all("Its flow run crashed" in t["state"]["message"] for t in tasks)
    # dated at the last sign of life, not at detection
    crashed_at = flows[0]["state"]["timestamp"]
    assert all(t["state"]["timestamp"] >= crashed_at for t in tasks)


@pytest.mark.anyio
async def test_a_final_state_recorded_by_the_run_and_delivered_late_wins_over_the_detector(
    db: Database,
) -> None:
    from storage_helpers import T0, state_event

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_id, task_id = uuid.uuid4(), uuid.uuid4()
    flow_events = run_events("flow-run", run_id, RUNNING, pid=dead.pid, hostname=socket_name())
    task_events = run_events("task-run", task_id, RUNNING, flow_run_id=run_id)
    writer = PersistenceWriter(db, clock=lambda: T0 + datetime.timedelta(seconds=2))
    await writer.write_events([*flow_events, *task_events])
    crashed = await mark_crashed_runs(db, None, now=T0 + datetime.timedelta(hours=1))
    assert [e.event for e in crashed] == [
        "headwater.flow-run.Crashed",
        "headwater.task-run.Crashed",
    ]
    # Crashed is dated just after the last sign of life (the heartbeat at T0 + 2 s)
    assert crashed[0].occurred < T0 + datetime.timedelta(seconds=3)
    # the run's own process had finished at T0 + 5 s; its events arrive now, late
    done_at = T0 + datetime.timedelta(seconds=5)
    late = [
        state_event(
            "task-run",
            task_id,
            "Completed",
            "COMPLETED",
            occurred=done_at,
            previous=task_events[-1],
            flow_run_id=run_id,
        ),
        state_event(
            "flow-run", run_id, "Completed", "COMPLETED", occurred=done_at, previous=flow_events[-1]
        ),
    ]
    await writer.write_events(late)
    detail = await read_flow_run(db, run_id)
    assert detail is not None and detail.run.state.name == "Completed"
    from headwater.storage.queries import read_task_run

    task = await read_task_run(db, task_id)
    assert task is not None and task.run.state.name == "Completed"


def socket_name() -> str:
    import socket

    return socket.gethostname()
