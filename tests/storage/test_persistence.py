"""ensure_persistence(): the bus-to-database bridge, its errors, and flushing at exit."""

from __future__ import annotations

import datetime
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from storage_helpers import run_events

from headwater.events.bus import get_bus
from headwater.exceptions import DatabaseCorruptError
from headwater.settings import temporary_settings
from headwater.storage.persistence import ensure_persistence, get_persistence, stop_persistence

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


@pytest.fixture(autouse=True)
def stopped() -> Iterator[None]:
    stop_persistence()
    yield
    stop_persistence()


def log_sinks() -> tuple[object, ...]:
    from headwater.engine import logging as engine_logging

    return engine_logging._sinks


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def test_published_events_are_committed_when_flush_returns(tmp_path: Path) -> None:
    run_id = uuid.uuid4()
    with temporary_settings(home=tmp_path, database_batch_latency=30.0):
        persistence = ensure_persistence()
        assert persistence is not None
        assert ensure_persistence() is persistence  # idempotent
        assert get_persistence() is persistence
        bus = get_bus()
        now = datetime.datetime.now(datetime.timezone.utc)  # the start-up prune keeps it
        for event in run_events("flow-run", run_id, start=now):
            bus.publish(event)
        assert bus.flush(timeout=10)
        # Nothing but the flush could have made the writer commit within 30 s.
        assert rows(tmp_path / "headwater.db", "SELECT state_name FROM flow_runs") == [
            ("Completed",)
        ]


def test_settings_that_storage_does_not_use_do_not_restart_it(tmp_path: Path) -> None:
    with temporary_settings(home=tmp_path):
        first = ensure_persistence()
        with temporary_settings(logging_level="DEBUG"):
            assert ensure_persistence() is first
        with temporary_settings(home=tmp_path / "elsewhere"):
            other = ensure_persistence()
            assert other is not None and other is not first
            assert other.database.path == tmp_path / "elsewhere" / "headwater.db"


def test_disabled_events_mean_no_persistence(tmp_path: Path) -> None:
    with temporary_settings(home=tmp_path, events_enabled=False):
        assert ensure_persistence() is None
    assert not (tmp_path / "headwater.db").exists()


def test_unusable_database_is_an_error_when_persistence_is_required(tmp_path: Path) -> None:
    (tmp_path / "headwater.db").write_bytes(b"garbage" * 1000)
    with temporary_settings(home=tmp_path, persistence_required=True):
        with pytest.raises(DatabaseCorruptError) as first:
            ensure_persistence()
        with pytest.raises(DatabaseCorruptError) as second:
            ensure_persistence()
    assert str(tmp_path / "headwater.db") in str(first.value)
    assert second.value is first.value  # one error, not a new attempt per run


def test_unusable_database_warns_once_when_persistence_is_optional(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "headwater.db").write_bytes(b"garbage" * 1000)
    with (
        caplog.at_level(logging.WARNING, logger="headwater.storage"),
        temporary_settings(home=tmp_path, persistence_required=False),
    ):
        assert ensure_persistence() is None
        assert ensure_persistence() is None
    warnings = [r for r in caplog.records if r.name == "headwater.storage"]
    assert len(warnings) == 1
    assert "not being saved" in warnings[0].getMessage()
    assert str(tmp_path / "headwater.db") in warnings[0].getMessage()


def test_a_flow_run_is_committed_before_the_flow_call_returns(tmp_path: Path) -> None:
    from headwater import flow, task
    from headwater.logging import get_run_logger

    @task
    def double(x: int) -> int:
        return 2 * x

    @flow
    def pipeline() -> int:
        get_run_logger().info("x" * 50)
        return double(21)

    with temporary_settings(
        home=tmp_path, database_batch_latency=30.0, logging_max_message_length=20
    ):
        ensure_persistence()
        assert pipeline() == 42
        db = tmp_path / "headwater.db"
        # The engine flushes the bus after the terminal event; no wait needed here.
        assert rows(db, "SELECT flow_name, state_type FROM flow_runs") == [
            ("pipeline", "COMPLETED")
        ]
        assert rows(db, "SELECT task_name, state_type FROM task_runs") == [("double", "COMPLETED")]
        persistence = get_persistence()
        assert persistence is not None and persistence.sink in log_sinks()
        stop_persistence()
        assert persistence.sink not in log_sinks()
        messages = [row[0] for row in rows(db, "SELECT message FROM logs")]
        assert "x" * 20 + "... [truncated 30 characters]" in messages


CHILD = textwrap.dedent(
    """
    import datetime, sys, time, uuid
    from headwater.events.bus import get_bus
    from headwater.storage import RunLog, ensure_persistence
    from storage_helpers import T0, run_events

    NOW = datetime.datetime.now(datetime.timezone.utc)

    persistence = ensure_persistence()
    run_id = uuid.uuid4()
    # Recent events: the retention sweep at start-up would remove 2024's.
    for event in run_events("flow-run", run_id, start=NOW):
        get_bus().publish(event)
    persistence.writer.enqueue_log(
        RunLog(flow_run_id=run_id, task_run_id=None, name="x", level=20, message="bye",
               timestamp=T0)
    )
    print("published", flush=True)
    if sys.argv[1] == "wait":
        time.sleep(60)
    """
)


def run_child(tmp_path: Path, mode: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), env.get("PYTHONPATH", "")])
    env["HEADWATER_HOME"] = str(tmp_path)
    # Nothing would be written for 60 s but for the exit or SIGTERM flush.
    env["HEADWATER_DATABASE_BATCH_LATENCY"] = "60"
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )


def test_buffered_events_and_logs_are_written_at_interpreter_exit(tmp_path: Path) -> None:
    with run_child(tmp_path, "exit") as child:
        _, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    db = tmp_path / "headwater.db"
    assert rows(db, "SELECT count(*) FROM events") == [(3,)], err
    assert rows(db, "SELECT message FROM logs") == [("bye",)]


def test_buffered_events_are_written_on_sigterm(tmp_path: Path) -> None:
    with run_child(tmp_path, "wait") as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "published"
            child.send_signal(signal.SIGTERM)
            _, err = child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
    # Still terminated by the signal, as without headwater.
    assert child.returncode == -signal.SIGTERM, err
    db = tmp_path / "headwater.db"
    assert rows(db, "SELECT state_name FROM flow_runs") == [("Completed",)]
    assert rows(db, "SELECT message FROM logs") == [("bye",)]
