"""SIGTERM and Ctrl-C end every run in a final state, queued work never starts, exit is prompt.

Real processes: a flow runs in a child, which is sent the signal once its tasks are under
way; the run history it leaves behind is then read from its database file.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    from headwater import flow, task

    mode, ready = sys.argv[1], Path(sys.argv[2])
    started = []

    @task
    def work(i: int) -> int:
        started.append(i)
        if len(started) == 4:
            ready.write_text("go")
        time.sleep(0.05)
        return i

    @task
    def long() -> None:
        ready.write_text("go")
        time.sleep(60)

    @task
    async def along() -> None:
        ready.write_text("go")
        await asyncio.sleep(60)

    @flow
    def fan_out() -> int:
        futures = [work.submit(i) for i in range(400)]
        return sum(f.result() for f in futures)

    @flow
    def sequential() -> None:
        long()

    @flow
    def stuck() -> None:
        long.submit().result()  # a sync task in a pool thread that never returns

    @flow
    async def awaiting() -> None:
        await along()

    try:
        if mode == "fan_out":
            fan_out()
        elif mode == "sequential":
            sequential()
        elif mode == "stuck":
            stuck()
        else:
            asyncio.run(awaiting())
    finally:
        Path(str(ready) + ".started").write_text(str(len(started)))
    """
)


def run_and_signal(tmp_path: Path, mode: str, signum: int) -> tuple[int, float, int]:
    ready = tmp_path / "ready"
    env = dict(
        os.environ,
        HEADWATER_HOME=str(tmp_path),
        HEADWATER_LOGGING_TO_CONSOLE="false",
        HEADWATER_TASKS_RUNNER_THREAD_POOL_MAX_WORKERS="2",
    )
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, mode, str(ready)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    sent = time.monotonic()
    child.send_signal(signum)
    child.communicate(timeout=60)
    took = time.monotonic() - sent
    started = Path(str(ready) + ".started")
    return child.returncode, took, int(started.read_text()) if started.exists() else -1


def runs(tmp_path: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    with sqlite3.connect(tmp_path / "headwater.db") as db:
        flows = db.execute("SELECT state_name, state_message FROM flow_runs").fetchall()
        tasks = db.execute("SELECT state_type, state_name, state_message FROM task_runs").fetchall()
    return flows, tasks


def last_state_changes(tmp_path: Path) -> list[str]:
    """The state-change events, in the order they happened."""
    with sqlite3.connect(tmp_path / "headwater.db") as db:
        rows = db.execute(
            "SELECT event FROM events WHERE event LIKE 'headwater.%-run.%' ORDER BY occurred, id"
        ).fetchall()
    return [row[0] for row in rows]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_queued_tasks_never_start_and_every_run_ends_before_a_prompt_exit(
    tmp_path: Path, signum: int
) -> None:
    code, took, started = run_and_signal(tmp_path, "fan_out", signum)
    assert code == (143 if signum == signal.SIGTERM else -signal.SIGINT)
    assert took < 10  # not the 400 x 50 ms / 2 workers = 10 s the queue holds
    assert 4 <= started < 40  # the queue was dropped, not run
    flows, tasks = runs(tmp_path)
    assert [name for name, _ in flows] == ["Crashed"]
    assert len(tasks) == 400
    types = {state_type for state_type, _, _ in tasks}
    assert types <= {"COMPLETED", "CRASHED"}, types
    never = [m for _, name, m in tasks if name == "Crashed" and "Never started" in (m or "")]
    assert len(never) >= 400 - 40
    # nothing about a task run is recorded after its flow run's final state
    changes = last_state_changes(tmp_path)
    assert changes[-1] == "headwater.flow-run.Crashed"


def test_sigterm_crashes_a_sync_run_mid_task_and_exits_143(tmp_path: Path) -> None:
    code, took, _ = run_and_signal(tmp_path, "sequential", signal.SIGTERM)
    assert code == 143 and took < 10
    flows, tasks = runs(tmp_path)
    assert flows == [
        ("Crashed", "Execution was interrupted: the process was told to stop (SIGTERM).")
    ]
    assert [(t, n) for t, n, _ in tasks] == [("CRASHED", "Crashed")]


def test_sigterm_crashes_an_async_run(tmp_path: Path) -> None:
    code, took, _ = run_and_signal(tmp_path, "async", signal.SIGTERM)
    assert code == 143 and took < 10
    flows, tasks = runs(tmp_path)
    assert [name for name, _ in flows] == ["Crashed"]
    assert "SIGTERM" in (flows[0][1] or "")
    assert [n for _, n, _ in tasks] == ["Crashed"]


def test_a_task_stuck_in_a_thread_is_recorded_crashed_and_does_not_hold_the_exit(
    tmp_path: Path,
) -> None:
    code, took, _ = run_and_signal(tmp_path, "stuck", signal.SIGTERM)
    assert code == 143
    assert took < 30  # the 5 s grace, not the task's 60 s sleep
    flows, tasks = runs(tmp_path)
    assert [name for name, _ in flows] == ["Crashed"]
    assert [(t, n) for t, n, _ in tasks] == [("CRASHED", "Crashed")]
    assert "Still running 5 s after its flow run was interrupted" in tasks[0][2]
