"""Transactions: commit and rollback hooks, nesting and commit modes, isolation and locks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from results_helpers import start_script
from support import EventLog

from headwater import flow, task
from headwater.cache_policies import INPUTS
from headwater.exceptions import LockTimeout
from headwater.locking import FileSystemLockManager, MemoryLockManager
from headwater.results import ResultStore
from headwater.settings import temporary_settings
from headwater.transactions import (
    CommitMode,
    IsolationLevel,
    TransactionState,
    get_transaction,
    transaction,
)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    with temporary_settings(home=tmp_path, database_url=None):
        yield tmp_path


def _undoable(log: list[str], name: str) -> Any:
    @task(name=name)
    def step() -> str:
        log.append(f"run {name}")
        return name

    @step.on_rollback
    def undo(txn: Any) -> None:
        log.append(f"undo {name}")

    @step.on_commit
    def done(txn: Any) -> None:
        log.append(f"commit {name}")

    return step


@task
def explode() -> None:
    raise ValueError("boom")


def test_rollback_runs_the_tasks_hooks_in_reverse_order(home: Path, events: EventLog) -> None:
    log: list[str] = []
    steps = [_undoable(log, name) for name in "abc"]
    states: list[Any] = []

    @flow
    def pipeline() -> None:
        with transaction():
            for step in steps:
                states.append(step(return_state=True))
            explode()

    with pytest.raises(ValueError, match="boom"):
        pipeline()
    assert log == ["run a", "run b", "run c", "undo c", "undo b", "undo a"]
    for state in states:
        run_events = events.for_resource(f"headwater.task-run.{state.state_details.task_run_id}")
        rolled_back = run_events[-1]
        assert rolled_back.event == "headwater.task-run.RolledBack"
        assert rolled_back.follows == state.id  # follows the run's last state (Completed)
        assert rolled_back.payload["validated_state"]["type"] == "COMPLETED"
        assert state.is_completed()  # an event only: the run keeps its state


def test_commit_hooks_run_once_the_outermost_transaction_commits(home: Path) -> None:
    log: list[str] = []
    first, second = _undoable(log, "a"), _undoable(log, "b")

    @flow
    def pipeline() -> None:
        with transaction() as outer:
            first()
            with transaction():
                second()
            log.append(f"inner left, outer {outer.state.value}")

    pipeline()
    assert log == ["run a", "run b", "inner left, outer ACTIVE", "commit a", "commit b"]


def test_a_child_that_rolls_back_rolls_back_its_parent(home: Path) -> None:
    log: list[str] = []
    step = _undoable(log, "a")

    @flow
    def pipeline() -> str:
        with transaction() as txn:
            step()
            explode(return_state=True)  # the failure is handled, but its transaction rolled back
            return txn.state.value

    assert pipeline() == "ROLLED_BACK"
    assert log == ["run a", "undo a"]


def test_commit_modes() -> None:
    log: list[str] = []

    def hook(name: str) -> Any:
        return lambda txn: log.append(name)

    with transaction() as outer:
        with transaction(commit_mode=CommitMode.EAGER) as eager:
            eager.stage(None, on_rollback_hooks=[hook("undo eager")])
        assert eager.is_committed()
        with transaction() as lazy:
            lazy.stage(None, on_rollback_hooks=[hook("undo lazy")])
        assert lazy.is_staged()
        outer.stage(None, on_rollback_hooks=[hook("undo outer")])
        outer.rollback()
    assert log == ["undo outer", "undo lazy"]  # the eager child had committed already
    with transaction(commit_mode=CommitMode.OFF) as off:
        off.stage(None, on_rollback_hooks=[hook("undo off")])
    assert off.is_rolled_back() and log[-1] == "undo off"


def test_states_values_and_parents() -> None:
    txn = transaction()
    assert txn.state is TransactionState.PENDING and get_transaction() is None
    with txn:
        assert txn.is_active() and get_transaction() is txn
        txn.set("config", {"n": 1})
        with transaction() as child:
            copy = child.get("config")
            copy["n"] = 2
            assert txn.get("config") == {"n": 1}  # get returns a deep copy
            assert child.get("missing", "fallback") == "fallback"
            with pytest.raises(ValueError, match="missing"):
                child.get("missing")
        txn.stage("value")
        assert txn.is_staged()
    assert txn.is_committed() and get_transaction() is None


def test_a_keyed_transaction_commits_a_record_and_finds_it_again(home: Path) -> None:
    with transaction(key="daily-load") as first:
        assert not first.is_committed()
        first.stage({"rows": 3})
    assert ResultStore().read("daily-load").result == {"rows": 3}
    with transaction(key="daily-load") as second:
        assert second.is_committed()
        assert second.read().result == {"rows": 3}  # type: ignore[union-attr]
    with transaction(key="daily-load", overwrite=True) as third:
        assert not third.is_committed()


@pytest.mark.anyio
async def test_async_transaction_and_serializable_lock(home: Path) -> None:
    store = ResultStore()
    async with transaction(key="k", isolation_level=IsolationLevel.SERIALIZABLE) as txn:
        assert store.is_locked("k")
        txn.stage(1)
    assert txn.is_committed() and not store.is_locked("k")


def test_lock_managers() -> None:
    locks = MemoryLockManager()
    assert locks.acquire_lock("k", "me")
    assert locks.acquire_lock("k", "me")  # the holder may take it again
    assert not locks.acquire_lock("k", "you", acquire_timeout=0.05)
    with pytest.raises(ValueError, match="not held"):
        locks.release_lock("k", "you")
    locks.release_lock("k", "me")
    assert locks.acquire_lock("k", "you") and locks.is_lock_holder("k", "you")


@pytest.mark.anyio
async def test_an_async_waiter_does_not_block_the_loop() -> None:
    locks = MemoryLockManager()
    assert locks.acquire_lock("k", "first")
    ticks: list[int] = []

    async def ticker() -> None:
        for tick in range(3):
            ticks.append(tick)
            await asyncio.sleep(0)

    async def waiter() -> bool:
        return await locks.aacquire_lock("k", "second")

    waiting = asyncio.ensure_future(waiter())
    await ticker()  # runs while the waiter waits
    locks.release_lock("k", "first")
    assert await waiting and ticks == [0, 1, 2]
    assert not await locks.aacquire_lock("k", "third", acquire_timeout=0.05)


def test_serializable_runs_in_threads_compute_once(home: Path) -> None:
    calls: list[int] = []

    @task(cache_policy=INPUTS.configure(isolation_level="SERIALIZABLE"))
    def slow(x: int) -> int:
        calls.append(x)
        time.sleep(0.2)  # long enough for the other run to arrive while this one computes
        return x

    @flow
    def pipeline() -> list[str]:
        futures = [slow.submit(1), slow.submit(1)]
        return sorted(future.state.name for future in futures if future.wait() is None)

    assert pipeline() == ["Cached", "Completed"]
    assert calls == [1]


@pytest.mark.anyio
async def test_serializable_coroutines_compute_once(home: Path) -> None:
    calls: list[int] = []

    @task(cache_policy=INPUTS.configure(isolation_level="SERIALIZABLE"))
    async def slow(x: int) -> int:
        calls.append(x)
        await asyncio.sleep(0.1)
        return x

    @flow
    async def pipeline() -> list[str]:
        states = await asyncio.gather(slow(1, return_state=True), slow(1, return_state=True))
        return sorted(state.name for state in states)

    assert await pipeline() == ["Cached", "Completed"]
    assert calls == [1]


SERIALIZABLE_CHILD = """
import sys, time
from headwater import flow, task
from headwater.cache_policies import INPUTS

@task(cache_policy=INPUTS.configure(isolation_level="SERIALIZABLE"))
def slow(x):
    time.sleep(0.5)  # the other process arrives while this one computes
    return x

@flow
def pipeline():
    time.sleep(max(0.0, float(sys.argv[1]) - time.time()))  # both start together
    return slow(1, return_state=True).name

print(pipeline())
"""


def test_serializable_processes_with_the_same_key_compute_once(home: Path) -> None:
    start = str(time.time() + 1.5)
    children = [start_script(SERIALIZABLE_CHILD, home, start) for _ in range(2)]
    names = []
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        names.append(out.strip())
    assert sorted(names) == ["Cached", "Completed"]


HOLD_LOCK = """
import sys, time
from headwater.locking import FileSystemLockManager

locks = FileSystemLockManager(sys.argv[1])
assert locks.acquire_lock("shared", "child")
print("held", flush=True)
time.sleep(60)  # until killed: a crashed holder
"""


def test_file_locks_are_shared_between_processes(home: Path) -> None:
    holder = start_script(HOLD_LOCK, home, str(home / "locks"))
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        locks = FileSystemLockManager(home / "locks")
        assert not locks.acquire_lock("shared", "parent", acquire_timeout=0.1)
        with (
            pytest.raises(LockTimeout),
            transaction(
                key="shared",
                store=ResultStore(home, lock_manager=locks),
                isolation_level=IsolationLevel.SERIALIZABLE,
                lock_timeout=0.1,
            ),
        ):
            pass
    finally:
        holder.kill()
        holder.communicate(timeout=10)
    locks = FileSystemLockManager(home / "locks")  # the dead holder's lock went with it
    assert locks.acquire_lock("shared", "parent", acquire_timeout=10)
    locks.release_lock("shared", "parent")
