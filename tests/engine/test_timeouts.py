"""Timeouts: task runs interrupted past ``timeout_seconds``, and the SyncDeadline guard."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from support import assert_transitions

from headwater import flow, task
from headwater.engine.timeouts import SyncDeadline, TimeoutInterrupt
from headwater.events import get_bus
from headwater.exceptions import TaskRunTimeoutError
from headwater.states import StateType


def _busy_until_interrupted():
    while True:
        time.sleep(0.005)


# -- task timeouts ------------------------------------------------------------------------


def test_sync_task_timeout_interrupts_a_sleep_loop(events):
    @task(timeout_seconds=0.2)
    def stuck():
        _busy_until_interrupted()

    @flow
    def pipeline():
        return {"state": stuck(return_state=True)}

    state = pipeline()["state"]
    assert state.type is StateType.FAILED
    assert state.name == "TimedOut"
    assert state.message == "Task run exceeded timeout of 0.2 second(s)"
    assert isinstance(state.data, TaskRunTimeoutError)
    assert isinstance(state.data, TimeoutError)
    assert_transitions(
        events, state.state_details.task_run_id, ["Pending", "Running", "TimedOut"], kind="task-run"
    )


def test_sync_task_timeout_interrupts_a_pure_python_loop(events):
    @task(timeout_seconds=0.1)
    def spin():
        n = 0
        while True:
            n += 1

    with pytest.raises(TaskRunTimeoutError, match=r"exceeded timeout of 0\.1 second"):
        spin()


def test_user_except_exception_does_not_swallow_the_timeout(events):
    swallowed = []

    @task(timeout_seconds=0.1)
    def stubborn():
        try:
            _busy_until_interrupted()
        except Exception:  # the interrupt is a BaseException: it passes through
            swallowed.append(True)
        return "finished"

    with pytest.raises(TaskRunTimeoutError):
        stubborn()
    assert swallowed == []


@pytest.mark.anyio
async def test_async_task_timeout_cancels_at_an_await(events):
    after_sleep = []

    @task(timeout_seconds=0.1)
    async def sleepy():
        await asyncio.sleep(10)
        after_sleep.append(True)

    @flow
    async def pipeline():
        return {"state": await sleepy(return_state=True)}

    state = (await pipeline())["state"]
    assert state.name == "TimedOut"
    assert state.message == "Task run exceeded timeout of 0.1 second(s)"
    assert isinstance(state.data, TaskRunTimeoutError)
    assert after_sleep == []
    assert_transitions(
        events, state.state_details.task_run_id, ["Pending", "Running", "TimedOut"], kind="task-run"
    )


@pytest.mark.anyio
async def test_async_task_timeout_raises_when_called(events):
    @task(timeout_seconds=0.05)
    async def sleepy():
        await asyncio.sleep(10)

    with pytest.raises(TaskRunTimeoutError):
        await sleepy()


def test_timeout_counts_as_a_failure_for_retries(events):
    attempts = []

    @task(timeout_seconds=0.2, retries=1)
    def slow_then_fast():
        attempts.append(1)
        if len(attempts) == 1:
            _busy_until_interrupted()
        return "fast"

    state = slow_then_fast(return_state=True)
    assert state.result() == "fast"
    assert len(attempts) == 2
    get_bus().flush(timeout=10)
    assert_transitions(
        events,
        state.state_details.task_run_id,
        ["Pending", "Running", "Retrying", "Completed"],
        kind="task-run",
    )


@pytest.mark.anyio
async def test_async_timeout_counts_as_a_failure_for_retries(events):
    attempts = []
    failures = []

    @task(timeout_seconds=0.05, retries=1, on_failure=[lambda t, r, s: failures.append(s)])
    async def always_slow():
        attempts.append(1)
        await asyncio.sleep(10)

    state = await always_slow(return_state=True)
    assert state.name == "TimedOut"
    assert len(attempts) == 2
    assert [s.name for s in failures] == ["TimedOut"]


def test_no_stray_interrupt_after_tasks_finish_in_time(events):
    @task(timeout_seconds=1)
    def quick(i):
        total = 0
        for j in range(2000):
            total += j
        return i

    @flow
    def pipeline():
        return [quick(i, return_state=True) for i in range(300)]

    states = pipeline()
    assert [s.name for s in states] == ["Completed"] * 300
    # and the thread carries on unharmed afterwards
    for _ in range(200):
        time.sleep(0.0005)


def test_deadlines_racing_the_end_of_a_task_never_leak_an_interrupt(events):
    # each run ends right around its deadline: it may complete or time out, but a late
    # interrupt must never hit the engine or the flow body after the task has returned
    @task(timeout_seconds=0.004)
    def borderline():
        end = time.monotonic() + 0.004
        while time.monotonic() < end:
            pass
        return "done"

    @flow
    def pipeline():
        names = []
        for _ in range(40):
            names.append(borderline(return_state=True).name)
            total = 0
            for j in range(500):  # bytecode where a leaked interrupt would land
                total += j
        return names

    state = pipeline(return_state=True)
    assert state.is_completed(), state
    assert set(state.result()) <= {"Completed", "TimedOut"}


def test_task_timeout_must_be_positive():
    with pytest.raises(ValueError, match="timeout_seconds must be positive"):
        task(timeout_seconds=0)(lambda: None)


# -- SyncDeadline -----------------------------------------------------------------------------


def test_sync_deadline_interrupts_the_block():
    with pytest.raises(TimeoutInterrupt), SyncDeadline(0.05) as guard:
        _busy_until_interrupted()
    assert guard.fired
    assert guard.done


def test_sync_deadline_not_reached_does_nothing():
    with SyncDeadline(5) as guard:
        value = sum(range(100))
    assert value == 4950
    assert not guard.fired
    assert guard.done
    for _ in range(20):  # nothing was left queued for this thread
        time.sleep(0.001)


def test_sync_deadline_passes_other_exceptions_through():
    with pytest.raises(KeyError), SyncDeadline(5):
        raise KeyError("k")


def test_sync_deadline_is_not_a_catchable_exception():
    assert not issubclass(TimeoutInterrupt, Exception)
    assert issubclass(TimeoutInterrupt, BaseException)


def test_sync_deadline_fired_but_undelivered_is_reported_at_exit():
    guard = SyncDeadline(5)
    with pytest.raises(TimeoutInterrupt), guard:
        # as if the watchdog fired just as the block ended: the queued interrupt is
        # withdrawn and the exit reports the timeout instead
        guard.fired = True
    for _ in range(20):
        time.sleep(0.001)


def test_sync_deadlines_in_several_threads_fire_independently():
    outcomes: dict[str, str] = {}

    def worker(name, seconds, loops):
        try:
            with SyncDeadline(seconds):
                for _ in range(loops):
                    time.sleep(0.005)
        except TimeoutInterrupt:
            outcomes[name] = "interrupted"
        else:
            outcomes[name] = "finished"

    threads = [
        threading.Thread(target=worker, args=("slow", 0.05, 10_000)),
        threading.Thread(target=worker, args=("fast", 5, 2)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert outcomes == {"slow": "interrupted", "fast": "finished"}


def test_nested_deadlines_the_inner_fires_first():
    with SyncDeadline(5) as outer, pytest.raises(TimeoutInterrupt), SyncDeadline(0.05) as inner:
        _busy_until_interrupted()
    assert inner.fired
    assert not outer.fired


def test_a_flow_timeout_is_not_mistaken_for_its_tasks_own_timeout() -> None:
    import time as _time

    from headwater import flow, task
    from headwater.states import StateType

    attempts: list[int] = []

    @task(timeout_seconds=5, retries=2)
    def slow() -> None:
        attempts.append(1)
        for _ in range(100):
            _time.sleep(0.01)

    @flow(timeout_seconds=0.2)
    def bounded() -> None:
        slow()

    state = bounded(return_state=True)
    assert state.name == "TimedOut"
    assert state.type is StateType.FAILED
    assert "Flow run exceeded timeout of 0.2" in (state.message or "")
    assert attempts == [1]  # the task did not retry on the flow's deadline


def test_a_parent_flow_timeout_is_not_taken_by_a_subflow_with_its_own() -> None:
    import time as _time

    from headwater import flow

    @flow(timeout_seconds=5)
    def child() -> None:
        for _ in range(100):
            _time.sleep(0.01)

    @flow(timeout_seconds=0.2)
    def parent() -> None:
        child()

    state = parent(return_state=True)
    assert state.name == "TimedOut"
    assert "Flow run exceeded timeout of 0.2" in (state.message or "")
