"""Cancelling live flow runs: sync and async bodies, hooks, tasks caught mid-way."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest
from support import EventLog, assert_transitions

from headwater import flow, task
from headwater.engine.control import live_flow_run_ids, request_cancellation
from headwater.runtime import flow_run
from headwater.states import StateType


def _cancel_soon(run_id: str, message: str, started: threading.Event) -> None:
    def cancel() -> None:
        started.wait(5)
        assert request_cancellation(uuid.UUID(run_id), message)

    threading.Thread(target=cancel, daemon=True).start()


def test_a_sync_flow_is_cancelled_between_bytecodes(events: EventLog) -> None:
    seen: list[str] = []
    started = threading.Event()

    @task
    def step(i: int) -> int:
        started.set()
        for _ in range(200):
            time.sleep(0.01)
        return i

    @flow(on_cancellation=[lambda f, r, s: seen.append(s.name)])
    def pipeline() -> None:
        _cancel_soon(flow_run.id, "operator said stop", started)
        for i in range(10):
            step(i)

    state = pipeline(return_state=True)
    assert state.type is StateType.CANCELLED
    assert state.message == "operator said stop"
    assert seen == ["Cancelling"]
    run_id = state.state_details.flow_run_id
    assert_transitions(events, run_id, ["Pending", "Running", "Cancelling", "Cancelled"])
    task_states = [e.event for e in events if e.event.startswith("headwater.task-run.")]
    assert task_states[-1] == "headwater.task-run.Cancelled"


@pytest.mark.anyio
async def test_an_async_flow_and_its_submitted_tasks_are_cancelled(events: EventLog) -> None:
    started = threading.Event()

    @task
    async def wait_long(i: int) -> int:
        started.set()
        await asyncio.sleep(30)
        return i

    @flow
    async def pipeline() -> None:
        _cancel_soon(flow_run.id, "enough", started)
        for i in range(3):
            wait_long.submit(i)
        await asyncio.sleep(30)

    state = await pipeline(return_state=True)
    assert state.type is StateType.CANCELLED
    run_id = state.state_details.flow_run_id
    assert_transitions(events, run_id, ["Pending", "Running", "Cancelling", "Cancelled"])
    finals = [e.event for e in events if e.event.endswith(".Cancelled") and "task-run" in e.event]
    assert len(finals) == 3


def test_cancelling_an_unknown_or_finished_run_returns_false() -> None:
    @flow
    def quick() -> str:
        return flow_run.id

    run_id = quick()
    assert request_cancellation(uuid.UUID(run_id)) is False
    assert request_cancellation(uuid.uuid4()) is False
    assert uuid.UUID(run_id) not in live_flow_run_ids()


def test_a_flow_that_finishes_is_not_interrupted_later() -> None:
    # a request racing the end of the body must not leave an interrupt queued behind
    @flow
    def quick(i: int) -> int:
        request_cancellation(uuid.UUID(flow_run.id), "too late?")
        return i

    for i in range(20):
        state = quick(i, return_state=True)
        assert state.type is StateType.CANCELLED
    time.sleep(0.05)  # a stray interrupt would surface in this thread now
