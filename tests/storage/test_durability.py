"""A flow whose history cannot be committed fails on that same call, at its next task."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

CHILD = textwrap.dedent(
    """
    import os, resource, signal, sys, time
    from headwater import flow, task
    from headwater.exceptions import StorageError

    ran = []

    @task
    def add(i: int) -> int:
        ran.append(i)
        time.sleep(0.0005)  # work the writer outpaces, so its failure comes mid-run
        return i

    @flow
    def warm() -> int:
        return 1

    @flow
    def big(n: int) -> int:
        return sum(add(i) for i in range(n))

    warm()  # creates and migrates the database
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit, writes fail with EFBIG
    db = os.path.join(os.environ["HEADWATER_HOME"], "headwater.db")
    # an emptied WAL must grow for the next commits: they fail past the limit
    import sqlite3
    with sqlite3.connect(db) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    limit = os.path.getsize(db) + 64 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        big(30000)
    except StorageError as exc:
        print("raised", type(exc).__name__, str(exc))
        print("tasks run", len(ran))
        sys.exit(0)
    print("returned normally")
    sys.exit(1)
    """
)


def test_a_disk_that_fills_mid_run_fails_the_flow_call_naming_the_file(tmp_path: Path) -> None:
    env = dict(os.environ, HEADWATER_HOME=str(tmp_path), HEADWATER_LOGGING_TO_CONSOLE="false")
    child = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0, child.stdout + child.stderr
    assert child.stdout.startswith("raised DatabaseUnavailableError")
    assert str(tmp_path / "headwater.db") in child.stdout
    assert "could not write run history" in child.stderr
    # it stopped at the first task after the failed write, not after all 30,000
    ran = int(child.stdout.rsplit("tasks run", 1)[1])
    assert ran < 20000
