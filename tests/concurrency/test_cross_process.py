"""Limits hold across real processes; a killed holder's slots come back."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from headwater.concurrency import create_concurrency_limit, read_concurrency_limit
from headwater.concurrency.sync import concurrency

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


def start(home: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["HEADWATER_HOME"] = str(home)
    env["HEADWATER_LOGGING_TO_CONSOLE"] = "false"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, str(HERE / "slot_holder.py"), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"the holder exited early: {process.communicate()[1]}")
        assert time.monotonic() < deadline, "the holder never took its slot"
        time.sleep(0.02)


def test_three_processes_never_hold_a_limit_of_one_together(home: Path, tmp_path: Path) -> None:
    create_concurrency_limit("shared", 1)
    begin = time.time() + 1.0  # every process is imported and waiting by then
    outputs = [tmp_path / f"holder-{number}.txt" for number in range(3)]
    processes = [start(home, "share", "shared", "3", str(out), repr(begin)) for out in outputs]
    for process in processes:
        _, errors = process.communicate(timeout=60)
        assert process.returncode == 0, errors
    intervals = sorted(
        tuple(map(float, line.split())) for out in outputs for line in out.read_text().splitlines()
    )
    assert len(intervals) == 9
    for (_, released), (acquired, _) in itertools.pairwise(intervals):
        assert acquired >= released, f"two holders at once: {intervals}"
    assert read_concurrency_limit("shared").limit.active_slots == 0


def test_a_killed_holders_slot_is_freed_when_its_pid_is_dead(
    home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    create_concurrency_limit("db", 1)
    ready = tmp_path / "ready"
    holder = start(home, "hold", "db", str(ready), "3600")
    wait_for(ready, holder)
    assert read_concurrency_limit("db").leases[0].pid == holder.pid
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=30)
    caplog.set_level(logging.INFO, logger="headwater.concurrency")
    # The lease has an hour to run, but its process is gone: the slot is free now.
    with concurrency("db", timeout_seconds=20):
        assert [lease.pid for lease in read_concurrency_limit("db").leases] == [os.getpid()]
    assert "orphaned" in caplog.text


def test_a_killed_holders_slot_is_freed_when_its_lease_expires(home: Path, tmp_path: Path) -> None:
    create_concurrency_limit("db", 1)
    ready = tmp_path / "ready"
    # On "another machine", the pid cannot be probed: only the lease can free the slot.
    holder = start(home, "hold", "db", str(ready), "0.4", "another-host")
    wait_for(ready, holder)
    # While the holder lives it renews its lease, so the slot stays taken past 0.4 s.
    with pytest.raises(TimeoutError), concurrency("db", timeout_seconds=1.0):
        pass
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=30)
    with concurrency("db", timeout_seconds=20):
        assert read_concurrency_limit("db").limit.active_slots == 1
