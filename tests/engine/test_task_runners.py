"""The thread-pool task runner: where submitted runs execute, and that none outlives its flow."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from headwater import flow, get_run_logger, tags, task
from headwater.runtime import flow_run, task_run
from headwater.task_runners import TaskRunner, ThreadPoolTaskRunner

DEADLINE = 10


def _task_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("headwater-task")]


@task
def thread_name() -> str:
    return threading.current_thread().name


@task
async def async_thread() -> tuple[int, asyncio.AbstractEventLoop]:
    await asyncio.sleep(0)
    return threading.get_ident(), asyncio.get_running_loop()


def test_sync_tasks_run_on_worker_threads() -> None:
    @flow
    def pipeline() -> tuple[str, list[str]]:
        futures = [thread_name.submit() for _ in range(3)]
        return threading.current_thread().name, [future.result() for future in futures]

    flow_thread, names = pipeline()
    assert all(name.startswith("headwater-task") for name in names), names
    assert flow_thread not in names


@pytest.mark.anyio
async def test_async_tasks_of_an_async_flow_run_on_the_flow_loop() -> None:
    @flow
    async def pipeline() -> tuple[int, asyncio.AbstractEventLoop, list[Any]]:
        futures = [async_thread.submit() for _ in range(3)]
        results = [await future for future in futures]
        return threading.get_ident(), asyncio.get_running_loop(), results

    ident, loop, results = await pipeline()
    assert results == [(ident, loop)] * 3


@pytest.mark.anyio
async def test_sync_tasks_of_an_async_flow_run_on_worker_threads() -> None:
    @flow
    async def pipeline() -> str:
        return await thread_name.submit()

    assert (await pipeline()).startswith("headwater-task")


def test_async_task_submitted_from_a_sync_flow() -> None:
    @task
    async def where() -> tuple[str, int]:
        await asyncio.sleep(0)
        return threading.current_thread().name, 42

    @flow
    def pipeline() -> list[tuple[str, int]]:
        futures = [where.submit() for _ in range(3)]
        return [future.result() for future in futures]

    results = pipeline()
    assert [value for _, value in results] == [42, 42, 42]
    assert all(name.startswith("headwater-task") for name, _ in results)


def test_max_workers_one_runs_one_task_at_a_time() -> None:
    lock = threading.Lock()
    active = 0
    peak = 0

    @task
    def hold(pause: threading.Event) -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        pause.wait(0.02)  # a window in which a second worker would overlap
        with lock:
            active -= 1

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=1))
    def serial() -> list[str]:
        pause = threading.Event()
        futures = [hold.submit(pause) for _ in range(4)]
        for future in futures:
            future.result()
        return [future.state.name for future in futures]

    assert serial() == ["Completed"] * 4
    assert peak == 1


def test_two_workers_do_run_concurrently() -> None:
    # the counterpart of the test above: both tasks must be inside at once to pass the barrier
    barrier = threading.Barrier(2, timeout=DEADLINE)

    @task
    def meet() -> int:
        return barrier.wait()

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def parallel() -> list[int]:
        return sorted(future.result() for future in [meet.submit(), meet.submit()])

    assert parallel() == [0, 1]


def test_task_runner_class_is_accepted() -> None:
    @flow(task_runner=ThreadPoolTaskRunner)
    def pipeline() -> str:
        return thread_name.submit().result()

    assert pipeline().startswith("headwater-task")


def test_no_worker_threads_outlive_the_flow() -> None:
    @task
    async def anap() -> None:
        await asyncio.sleep(0)

    @flow
    def pipeline() -> None:
        for _ in range(4):
            thread_name.submit()
            anap.submit()
        assert _task_threads()

    pipeline()
    assert _task_threads() == []


@pytest.mark.anyio
async def test_no_worker_threads_outlive_an_async_flow() -> None:
    @flow
    async def pipeline() -> None:
        thread_name.submit()
        thread_name.submit()
        assert _task_threads()

    await pipeline()
    assert _task_threads() == []


def test_run_context_is_available_in_worker_threads(caplog) -> None:
    @task(tags=["decorated"])
    def inspect_context() -> dict[str, Any]:
        get_run_logger().info("hello from a worker")
        return {
            "thread": threading.current_thread().name,
            "task_run_name": task_run.name,
            "task_run_tags": sorted(task_run.tags),
            "flow_run_name": flow_run.name,
        }

    @flow
    def pipeline() -> tuple[dict[str, Any], str, str]:
        with tags("outer"):
            future = inspect_context.submit()
        return future.result(), future.task_run.name, flow_run.name

    seen, task_run_name, flow_run_name = pipeline()
    assert seen["thread"].startswith("headwater-task")
    assert seen["task_run_name"] == task_run_name
    assert seen["task_run_tags"] == ["decorated", "outer"]
    assert seen["flow_run_name"] == flow_run_name
    [record] = [r for r in caplog.records if r.getMessage() == "hello from a worker"]
    assert record.task_run_name == task_run_name
    assert record.flow_run_name == flow_run_name


def test_submitted_tasks_finish_before_the_flow_returns() -> None:
    finished: list[int] = []
    futures: list[Any] = []

    @task
    def slow(i: int, pause: threading.Event) -> None:
        pause.wait(0.02)
        finished.append(i)

    @flow
    def pipeline() -> None:
        pause = threading.Event()
        futures.extend(slow.submit(i, pause) for i in range(5))
        # returns without waiting on any future

    pipeline()
    assert sorted(finished) == [0, 1, 2, 3, 4]
    assert [future.state.name for future in futures] == ["Completed"] * 5


@pytest.mark.anyio
async def test_submitted_tasks_finish_before_an_async_flow_returns() -> None:
    finished: list[int] = []
    futures: list[Any] = []

    @task
    async def aslow(i: int) -> None:
        for _ in range(5):
            await asyncio.sleep(0)
        finished.append(i)

    @task
    def sslow(i: int, pause: threading.Event) -> None:
        pause.wait(0.02)
        finished.append(i)

    @flow
    async def pipeline() -> None:
        pause = threading.Event()
        futures.extend(aslow.submit(i) for i in range(3))
        futures.extend(sslow.submit(i, pause) for i in range(3, 6))

    await pipeline()
    assert sorted(finished) == [0, 1, 2, 3, 4, 5]
    assert all(future.done() and future.state.is_completed() for future in futures)


@pytest.mark.parametrize("workers", [0, -1])
def test_invalid_max_workers(workers: int) -> None:
    with pytest.raises(ValueError, match="max_workers must be at least 1"):
        ThreadPoolTaskRunner(max_workers=workers)


def test_duplicate_keeps_the_configuration() -> None:
    runner = ThreadPoolTaskRunner(max_workers=3)
    copy = runner.duplicate()
    assert copy is not runner
    assert isinstance(copy, ThreadPoolTaskRunner) and isinstance(copy, TaskRunner)
    assert copy.max_workers == 3
