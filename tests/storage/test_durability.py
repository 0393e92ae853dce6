"""A flow call whose terminal state cannot be committed says so on that same call."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

CHILD = textwrap.dedent(
    """
    import os, resource, signal, sys
    from headwater import flow, task
    from headwater.exceptions import StorageError

    @task
    def add(i: int) -> int:
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
    limit = os.path.getsize(db) + 64 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        big(3000)
    except StorageError as exc:
        print("raised", type(exc).__name__, str(exc))
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
