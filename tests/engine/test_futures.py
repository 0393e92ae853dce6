"""Futures of submitted task runs: waiting, results, callbacks, ``wait`` and ``as_completed``."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref
from typing import Any

import pytest

from headwater import flow, task
from headwater.exceptions import FutureBlockedLoopError
from headwater.futures import (
    HeadwaterFuture,
    HeadwaterFutureList,
    PrefectFuture,
    as_completed,
    wait,
)

# A generous bound on waits that only a bug would reach: the tests never sleep on purpose.
DEADLINE = 10


@task
def gated(gate: threading.Event, value: Any = None) -> Any:
    """Finish only once the test opens ``gate``."""
    if not gate.wait(DEADLINE):
        raise RuntimeError("gate never opened")
    return value


@task
def double(x: int) -> int:
    return x * 2


@task
def explode(message: str) -> None:
    raise ValueError(message)


@task
async def adouble(x: int) -> int:
    await asyncio.sleep(0)
    return x * 2


def test_submit_returns_a_future_before_the_task_finishes() -> None:
    @flow
    def pipeline() -> tuple[bool, bool, int]:
        gate = threading.Event()
        future = gated.submit(gate, 7)
        finished_early = future.done()
        running = future.state.is_pending() or future.state.is_running()
        gate.set()
        return finished_early, running, future.result()

    assert pipeline() == (False, True, 7)


def test_result_wait_and_state() -> None:
    @flow
    def pipeline() -> tuple[Any, ...]:
        future = double.submit(21)
        assert isinstance(future, HeadwaterFuture) and isinstance(future, PrefectFuture)
        assert future.wait() is None
        return future.done(), future.state.is_completed(), future.state.name, future.result()

    assert pipeline() == (True, True, "Completed", 42)


def test_task_run_id_matches_the_state() -> None:
    @flow
    def pipeline() -> bool:
        future = double.submit(1)
        future.wait()
        return future.state.state_details.task_run_id == future.task_run_id

    assert pipeline()


def test_done_callback_runs_once_with_the_future() -> None:
    calls: list[tuple[HeadwaterFuture[Any], bool]] = []

    @flow
    def pipeline() -> None:
        gate = threading.Event()
        future = gated.submit(gate, 1)
        future.add_done_callback(lambda f: calls.append((f, f.done())))
        assert calls == []
        gate.set()
        future.wait()
        # a callback added after completion runs at once
        future.add_done_callback(lambda f: calls.append((f, f.done())))
        assert len(calls) == 2
        assert all(f is future and done for f, done in calls)

    pipeline()
    assert len(calls) == 2


def test_a_failing_done_callback_is_logged_and_does_not_break_the_future(caplog) -> None:
    @flow
    def pipeline() -> int:
        future = double.submit(2)
        future.wait()
        future.add_done_callback(lambda f: 1 / 0)
        return future.result()

    assert pipeline() == 4
    assert any("done callback" in record.getMessage() for record in caplog.records)


def test_result_timeout_raises_timeout_error_while_unfinished() -> None:
    @flow
    def pipeline() -> int:
        gate = threading.Event()
        future = gated.submit(gate, 5)
        with pytest.raises(TimeoutError, match="did not finish within"):
            future.result(timeout=0.05)
        assert not future.done()
        # wait() with a timeout returns silently
        assert future.wait(timeout=0.01) is None
        gate.set()
        return future.result(timeout=DEADLINE)

    assert pipeline() == 5


def test_result_reraises_the_task_exception_or_returns_it() -> None:
    @flow
    def pipeline() -> tuple[BaseException, BaseException]:
        future = explode.submit("boom")
        with pytest.raises(ValueError, match="boom") as info:
            future.result()
        returned = future.result(raise_on_failure=False)
        assert future.state.is_failed()
        return info.value, returned

    raised, returned = pipeline()
    assert isinstance(returned, ValueError)
    assert returned is raised


@pytest.mark.anyio
async def test_await_future_and_aresult_in_async_flow() -> None:
    @flow
    async def pipeline() -> tuple[int, int, int]:
        first = adouble.submit(1)
        second = adouble.submit(2)
        sync_one = double.submit(3)
        return await first, await second.aresult(), await sync_one

    assert await pipeline() == (2, 4, 6)


@pytest.mark.anyio
async def test_aresult_reraises_and_times_out() -> None:
    @task
    async def never(gate: asyncio.Event) -> None:
        await gate.wait()

    @task
    async def afail() -> None:
        raise KeyError("nope")

    @flow
    async def pipeline() -> Any:
        gate = asyncio.Event()
        blocked = never.submit(gate)
        with pytest.raises(TimeoutError):
            await blocked.aresult(timeout=0.02)
        gate.set()
        await blocked
        failing = afail.submit()
        with pytest.raises(KeyError):
            await failing
        return await failing.aresult(raise_on_failure=False)

    assert isinstance(await pipeline(), KeyError)


@pytest.mark.anyio
async def test_blocking_result_before_the_task_starts_runs_it_elsewhere_as_prefect_does() -> None:
    @flow
    async def pipeline() -> tuple[int, int]:
        futures = [adouble.submit(4), adouble.submit(5)]
        first = futures[0].result()  # Prefect code does this in async flows
        return first, await futures[1]

    assert await pipeline() == (8, 10)


@task
async def slow_double(x: int) -> int:
    await asyncio.sleep(0.2)
    return x * 2


@pytest.mark.anyio
async def test_blocking_result_on_a_task_already_running_on_its_loop_raises() -> None:
    @flow
    async def pipeline() -> int:
        future = slow_double.submit(4)
        await asyncio.sleep(0.05)  # it has started, and awaits on this loop
        with pytest.raises(FutureBlockedLoopError, match="await future") as info:
            future.result()
        assert isinstance(info.value, RuntimeError)
        with pytest.raises(FutureBlockedLoopError):
            future.wait()
        return await future

    assert await pipeline() == 8


@pytest.mark.anyio
async def test_sync_as_completed_on_the_tasks_own_loop_raises() -> None:
    @flow
    async def pipeline() -> list[int]:
        futures = [adouble.submit(1)]
        # a plain for loop would block the loop the task needs: refuse rather than hang
        with pytest.raises(FutureBlockedLoopError, match="async for"):
            for _ in as_completed(futures):
                pass
        # the refused iteration kept its futures
        return [await future async for future in as_completed(futures)]

    assert await pipeline() == [2]


def test_wait_splits_done_and_not_done() -> None:
    @flow
    def pipeline() -> None:
        gate = threading.Event()
        quick = double.submit(1)
        quick.wait()
        slow = gated.submit(gate)
        done, not_done = wait([quick, slow], timeout=0.05)
        assert done == {quick}
        assert not_done == {slow}
        gate.set()
        result = wait([quick, slow])
        assert result.done == {quick, slow}
        assert result.not_done == set()

    pipeline()


def test_as_completed_yields_in_completion_order() -> None:
    @flow
    def pipeline() -> list[str]:
        gates = {name: threading.Event() for name in "abc"}
        futures = [gated.submit(gates[name], name) for name in "abc"]
        order = []
        gates["c"].set()
        for future in as_completed(futures, timeout=DEADLINE):
            name = future.result()
            order.append(name)
            # open the next gate only once this one was yielded: one order is possible
            following = {"c": "a", "a": "b"}.get(name)
            if following:
                gates[following].set()
        return order

    assert pipeline() == ["c", "a", "b"]


def test_as_completed_yields_finished_futures_first() -> None:
    @flow
    def pipeline() -> bool:
        gate = threading.Event()
        slow = gated.submit(gate)
        quick = double.submit(1)
        quick.wait()
        iterator = iter(as_completed([slow, quick]))
        first = next(iterator)
        gate.set()
        second = next(iterator)
        return first is quick and second is slow

    assert pipeline()


def test_as_completed_timeout_reports_unfinished_count() -> None:
    @flow
    def pipeline() -> None:
        gate = threading.Event()
        quick = double.submit(1)
        quick.wait()
        slow = gated.submit(gate)
        seen = []
        with pytest.raises(TimeoutError, match=r"^1 \(of 2\) futures unfinished$"):
            for future in as_completed([quick, slow], timeout=0.1):
                seen.append(future)
        assert seen == [quick]
        gate.set()

    pipeline()


def test_as_completed_rejects_a_negative_timeout() -> None:
    with pytest.raises(ValueError, match="negative"):
        as_completed([], timeout=-1)


def test_as_completed_of_nothing_yields_nothing() -> None:
    assert list(as_completed([])) == []


@pytest.mark.anyio
async def test_async_for_over_as_completed() -> None:
    @task
    async def waiting(gate: asyncio.Event, name: str) -> str:
        await gate.wait()
        return name

    @flow
    async def pipeline() -> list[str]:
        gates = {name: asyncio.Event() for name in "xyz"}
        futures = [waiting.submit(gates[name], name) for name in "xyz"]
        gates["z"].set()
        order = []
        async for future in as_completed(futures, timeout=DEADLINE):
            name = await future
            order.append(name)
            following = {"z": "x", "x": "y"}.get(name)
            if following:
                gates[following].set()
        return order

    assert await pipeline() == ["z", "x", "y"]


@pytest.mark.anyio
async def test_async_for_over_as_completed_times_out() -> None:
    @task
    async def waiting(gate: asyncio.Event) -> None:
        await gate.wait()

    @flow
    async def pipeline() -> None:
        gate = asyncio.Event()
        futures = [waiting.submit(gate), waiting.submit(gate), adouble.submit(1)]
        await futures[2]
        seen = []
        with pytest.raises(TimeoutError, match=r"2 \(of 3\) futures unfinished"):
            async for future in as_completed(futures, timeout=0.05):
                seen.append(future)
        assert seen == [futures[2]]
        gate.set()

    await pipeline()


def test_future_list_result_in_order_and_raises_first_failure() -> None:
    @task
    def check(x: int) -> int:
        if x < 0:
            raise ValueError(f"negative: {x}")
        return x

    @flow
    def pipeline() -> list[Any]:
        futures = double.map([1, 2, 3])
        assert isinstance(futures, HeadwaterFutureList)
        futures.wait()
        assert all(future.done() for future in futures)
        failing = check.map([1, -2, -3])
        with pytest.raises(ValueError, match="negative: -2"):
            failing.result()
        return [futures.result(), failing.result(raise_on_failure=False)]

    values, mixed = pipeline()
    assert values == [2, 4, 6]
    assert mixed[0] == 1
    assert isinstance(mixed[1], ValueError) and isinstance(mixed[2], ValueError)


@pytest.mark.anyio
async def test_future_list_is_awaitable() -> None:
    @flow
    async def pipeline() -> list[int]:
        return await adouble.map([1, 2, 3])

    assert await pipeline() == [2, 4, 6]


def _released(ref: weakref.ref[Any]) -> bool:
    """Whether ``ref`` dies once the worker thread that finished it has let go (bounded)."""
    for _ in range(200):
        gc.collect()
        if ref() is None:
            return True
        time.sleep(0.005)
    return False


def test_as_completed_releases_futures_once_yielded() -> None:
    @flow
    def pipeline() -> list[bool]:
        # the generator argument leaves as_completed holding the only references
        released = []
        refs: list[weakref.ref[HeadwaterFuture[Any]]] = []
        for future in as_completed((double.submit(i) for i in range(4)), timeout=DEADLINE):
            future.result()
            refs.append(weakref.ref(future))
            del future
            if len(refs) > 1:
                released.append(_released(refs[-2]))
        released.append(_released(refs[-1]))
        return released

    assert pipeline() == [True, True, True, True]


def test_submit_outside_a_flow_raises() -> None:
    with pytest.raises(RuntimeError, match="outside of a flow run"):
        double.submit(1)
    with pytest.raises(RuntimeError, match="outside of a flow run"):
        double.map([1, 2])
