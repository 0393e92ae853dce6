"""Several processes writing one file at once: no errors, no lost rows."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from headwater.storage.database import open_database

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
PROCESSES = 4
RUNS = 150  # per process, each its own transaction of 3 events: plenty of lock contention

WRITER = textwrap.dedent(
    """
    import os, sys, time, uuid, anyio
    from headwater.settings import Settings
    from headwater.storage.database import open_database
    from headwater.storage.writer import PersistenceWriter
    from storage_helpers import run_events

    async def main():
        path, start, runs = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
        settings = Settings(home=os.path.dirname(path), database_busy_timeout=20)
        async with await open_database(path, settings=settings) as db:
            writer = PersistenceWriter(db)
            time.sleep(max(0.0, start - time.time()))  # all processes start writing together
            for _ in range(runs):
                await writer.write_events(run_events("flow-run", uuid.uuid4()))
            print(writer.committed_events)

    anyio.run(main)
    """
)


@pytest.mark.anyio
async def test_concurrent_processes_lose_no_rows(db_path: Path) -> None:
    # Create the schema first so the children race on writes, not only on migrations.
    database = await open_database(db_path)
    await database.close()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), env.get("PYTHONPATH", "")])
    start = time.time() + 1.0
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db_path), str(start), str(RUNS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    outputs = [child.communicate(timeout=60) for child in children]
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
        assert out.strip() == str(RUNS * 3)
    connection = sqlite3.connect(db_path)
    try:
        assert (
            connection.execute("SELECT count(*) FROM events").fetchone()[0] == PROCESSES * RUNS * 3
        )
        assert (
            connection.execute("SELECT count(*) FROM flow_runs").fetchone()[0] == PROCESSES * RUNS
        )
        assert (
            connection.execute("SELECT count(*) FROM event_resources").fetchone()[0]
            == PROCESSES * RUNS * 3
        )
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        connection.close()


@pytest.mark.anyio
async def test_concurrent_first_opens_migrate_once(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), env.get("PYTHONPATH", "")])
    script = (
        "import sys, anyio\n"
        "from headwater.storage.database import open_database\n"
        "async def main():\n"
        "    db = await open_database(sys.argv[1])\n"
        "    await db.close()\n"
        "anyio.run(main)\n"
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(path)], stderr=subprocess.PIPE, env=env, text=True
        )
        for _ in range(3)
    ]
    for child in children:
        _, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
    connection = sqlite3.connect(path)
    try:
        tables = connection.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'events'"
        ).fetchone()[0]
        assert tables == 1
    finally:
        connection.close()
