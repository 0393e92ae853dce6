"""Tasks: direct calls in and out of flows, names, tags, returned states, hooks, concurrency."""

from __future__ import annotations

import asyncio
import logging

import anyio
import pytest
from support import assert_transitions

from headwater import flow, tags, task
from headwater.engine.runs import TaskRun
from headwater.engine.tasks import Task
from headwater.events import get_bus
from headwater.exceptions import FailedRun
from headwater.runtime import task_run as runtime_task_run
from headwater.states import Completed, Failed, State


def _task_run_ids(log) -> list[str]:
    """Task-run ids in the order their first event appeared."""
    seen: list[str] = []
    for event in log:
        if event.event.startswith("headwater.task-run.") and event.resource_id not in seen:
            seen.append(event.resource_id)
    return [resource_id.rsplit(".", 1)[1] for resource_id in seen]


def _tags_of(event) -> list[str]:
    return sorted(
        r["headwater.resource.id"].removeprefix("headwater.tag.")
        for r in event.related
        if r.get("headwater.resource.role") == "tag"
    )


# -- calling -----------------------------------------------------------------------------


def test_sync_task_in_a_flow_returns_its_value(events):
    @task
    def double(x):
        return x * 2

    @flow
    def pipeline():
        return double(4)

    assert pipeline() == 8
    (run_id,) = _task_run_ids(events)
    assert_transitions(events, run_id, ["Pending", "Running", "Completed"], kind="task-run")


@pytest.mark.anyio
async def test_async_task_in_an_async_flow(events):
    @task
    async def double(x):
        await asyncio.sleep(0)
        return x * 2

    @flow
    async def pipeline():
        return await double(5)

    assert await pipeline() == 10
    (run_id,) = _task_run_ids(events)
    assert_transitions(events, run_id, ["Pending", "Running", "Completed"], kind="task-run")


def test_sync_task_outside_a_flow_is_a_standalone_run(events):
    @task
    def double(x):
        return x * 2

    assert double(21) == 42
    get_bus().flush(timeout=10)
    (run_id,) = _task_run_ids(events)
    assert_transitions(events, run_id, ["Pending", "Running", "Completed"], kind="task-run")
    final = events.for_resource(f"headwater.task-run.{run_id}")[-1]
    roles = [r.get("headwater.resource.role") for r in final.related]
    assert "flow-run" not in roles
    assert final.payload["task_run"]["flow_run_id"] is None


@pytest.mark.anyio
async def test_async_task_outside_a_flow(events):
    @task
    async def double(x):
        return x * 2

    assert await double(3) == 6
    state = await double(4, return_state=True)
    assert state.is_completed()
    assert state.state_details.flow_run_id is None


def test_async_task_called_from_a_sync_flow_runs_to_completion(events):
    finished = []

    @task
    async def slow_double(x):
        await asyncio.sleep(0.01)
        finished.append(x)
        return x * 2

    @flow
    def pipeline():
        return slow_double(2)

    assert pipeline() == 4
    assert finished == [2]


def test_raising_task_reraises_the_original_exception(events):
    error = ValueError("task broke")

    @task
    def broken():
        raise error

    @flow
    def pipeline():
        with pytest.raises(ValueError) as info:
            broken()
        assert info.value is error
        return broken(return_state=True)

    state = pipeline(return_state=True)
    # the flow returned a failed task state: rule 4 makes the flow Failed
    assert state.is_failed()
    inner = state.data
    assert inner.message == "Task run encountered an exception: ValueError: task broke"
    assert inner.data is error


def test_return_state_returns_the_final_state(events):
    @task
    def ok():
        return "v"

    @flow
    def pipeline():
        return ok(return_state=True)

    state = pipeline()
    assert isinstance(state, State)
    assert state.is_completed()
    assert state.result() == "v"
    assert state.state_details.task_run_id is not None


def test_task_returning_a_completed_state_returns_that_state(events):
    returned = Completed(message="by hand", data=3)

    @task
    def gives_state():
        return returned

    @flow
    def pipeline():
        return gives_state(), gives_state(return_state=True)

    value, state = pipeline()
    assert value is returned
    assert state is not returned
    assert state.is_completed()
    assert state.message == "by hand"
    assert state.result() == 3


def test_task_returning_a_failed_state_fails_the_run(events):
    @task
    def gives_failed():
        return Failed(message="declined")

    @flow
    def pipeline():
        with pytest.raises(FailedRun, match="declined"):
            gives_failed()
        return gives_failed(return_state=True).is_failed()

    assert pipeline() is True


def test_task_called_with_wrong_arguments_raises_type_error(events):
    # tasks skip binding on the hot path: the function itself raises, and the run fails
    @task
    def one(x):
        return x

    with pytest.raises(TypeError, match="positional argument"):
        one(1, 2)


def test_task_needs_a_callable():
    with pytest.raises(TypeError, match="needs a function"):
        Task("nope")  # type: ignore[arg-type]


def test_with_options_keeps_the_function_and_changes_options():
    @task(name="orig", retries=1)
    def fn():
        return 1

    other = fn.with_options(name="other", tags=["x"])
    assert (other.name, other.retries, other.tags) == ("other", 1, frozenset({"x"}))
    assert other.fn is fn.fn
    assert fn.name == "orig"
    assert other() == 1
    with pytest.raises(TypeError, match="unknown option"):
        fn.with_options(colour="red")


# -- names -----------------------------------------------------------------------------------


def test_task_run_names_count_per_flow_run(events):
    @task
    def step():
        return runtime_task_run.name

    @task(name="other")
    def other():
        return runtime_task_run.name

    @flow
    def pipeline():
        return [step(), step(), other(), step()]

    assert pipeline() == ["step-0", "step-1", "other-0", "step-2"]
    # a new flow run starts counting again
    assert pipeline()[0] == "step-0"


def test_task_run_name_template(events):
    @task(task_run_name="square-{x}-{label}")
    def square(x, label="n"):
        return runtime_task_run.name

    @flow
    def pipeline():
        return square(3)

    assert pipeline() == "square-3-n"
    (run_id,) = _task_run_ids(events)
    event = events.for_resource(f"headwater.task-run.{run_id}")[-1]
    assert event.resource["headwater.resource.name"] == "square-3-n"


def test_task_run_name_callables(events):
    @task(task_run_name=lambda: "fixed")
    def plain():
        return runtime_task_run.name

    @task(task_run_name=lambda parameters: f"p{parameters['x']}")
    def with_params(x):
        return runtime_task_run.name

    assert plain() == "fixed"
    assert with_params(9) == "p9"


def test_task_run_name_template_with_missing_parameter_is_a_clear_error(events):
    @task(task_run_name="{missing}")
    def fn(x):
        return x

    with pytest.raises(ValueError, match=r"task 'fn'.*'missing'"):
        fn(1)


def test_task_run_name_callable_returning_non_string_is_an_error():
    @task(task_run_name=lambda: 5)
    def fn():
        return 1

    with pytest.raises(ValueError, match="expected str"):
        fn()


# -- tags ------------------------------------------------------------------------------------


def test_tags_from_decorator_and_context_are_related_resources(events):
    @task(tags=["decorated"])
    def tagged():
        return sorted(runtime_task_run.tags)

    @flow
    def pipeline():
        with tags("ctx"):
            inside = tagged()
        return inside, tagged()

    with_ctx, without_ctx = pipeline()
    assert with_ctx == ["ctx", "decorated"]
    assert without_ctx == ["decorated"]
    first, second = _task_run_ids(events)
    assert _tags_of(events.for_resource(f"headwater.task-run.{first}")[-1]) == [
        "ctx",
        "decorated",
    ]
    assert _tags_of(events.for_resource(f"headwater.task-run.{second}")[-1]) == ["decorated"]


def test_flow_tags_context_reaches_tasks(events):
    @task
    def tagged():
        return sorted(runtime_task_run.tags)

    @flow
    def pipeline():
        return tagged()

    with tags("outer"):
        assert pipeline() == ["outer"]


# -- hooks -----------------------------------------------------------------------------------


def test_hooks_receive_task_task_run_and_state(events):
    calls = []

    def record(kind):
        def hook(task_obj, task_run, state):
            calls.append((kind, task_obj, task_run, state))

        return hook

    @task(on_running=[record("running")], on_completion=[record("completed")])
    def ok():
        return 1

    @flow
    def pipeline():
        return ok()

    assert pipeline() == 1
    assert [call[0] for call in calls] == ["running", "completed"]
    for _, task_obj, task_run, _ in calls:
        assert task_obj is ok
        assert isinstance(task_run, TaskRun)
        assert task_run.name == "ok-0"
    assert calls[0][3].is_running()
    assert calls[1][3].is_completed()
    assert calls[1][3].result() == 1


def test_on_failure_hook_gets_the_failed_state(events):
    seen = []

    @task(on_failure=[lambda t, tr, s: seen.append(s)])
    def bad():
        raise ValueError("x")

    with pytest.raises(ValueError):
        bad()
    (state,) = seen
    assert state.is_failed()
    assert isinstance(state.data, ValueError)


def test_async_hooks_are_awaited_in_a_sync_task(events):
    seen = []

    async def hook(task_obj, task_run, state):
        await asyncio.sleep(0)
        seen.append(state.name)

    @task(on_completion=[hook])
    def ok():
        return 1

    ok()
    assert seen == ["Completed"]


@pytest.mark.anyio
async def test_sync_and_async_hooks_in_an_async_task(events):
    seen = []

    async def async_hook(task_obj, task_run, state):
        await asyncio.sleep(0)
        seen.append(("async", state.name))

    def sync_hook(task_obj, task_run, state):
        seen.append(("sync", state.name))

    @task(on_completion=[async_hook, sync_hook])
    async def ok():
        return 1

    assert await ok() == 1
    assert seen == [("async", "Completed"), ("sync", "Completed")]


def test_hooks_finish_before_the_call_returns(events):
    done = []

    async def slow_hook(task_obj, task_run, state):
        await asyncio.sleep(0.02)
        done.append(True)

    @task(on_completion=[slow_hook])
    def ok():
        return 1

    @flow
    def pipeline():
        ok()
        return list(done)

    assert pipeline() == [True]


def test_raising_hook_is_logged_and_does_not_change_the_state(events, caplog):
    after = []

    def bad_hook(task_obj, task_run, state):
        raise RuntimeError("hook broke")

    def next_hook(task_obj, task_run, state):
        after.append(state.name)

    @task(on_completion=[bad_hook, next_hook])
    def ok():
        return 5

    @flow
    def pipeline():
        return ok(return_state=True)

    with caplog.at_level(logging.INFO, logger="headwater"):
        state = pipeline()
    assert state.is_completed()
    assert state.result() == 5
    assert after == ["Completed"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].name.startswith("headwater")
    assert "An error was encountered while running hook" in errors[0].getMessage()
    assert "bad_hook" in errors[0].getMessage()
    assert errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], RuntimeError)
    (run_id,) = _task_run_ids(events)
    assert_transitions(events, run_id, ["Pending", "Running", "Completed"], kind="task-run")


def test_raising_failure_hook_still_reraises_the_task_error(events, caplog):
    def bad_hook(task_obj, task_run, state):
        raise RuntimeError("hook broke")

    @task(on_failure=[bad_hook])
    def broken():
        raise KeyError("original")

    with pytest.raises(KeyError, match="original"):
        broken()
    assert any("hook" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


def test_hook_decorator_form(events):
    seen = []

    @task
    def maybe(fail):
        if fail:
            raise ValueError("no")
        return "yes"

    @maybe.on_completion
    def completed(task_obj, task_run, state):
        seen.append(("completed", state.result()))

    @maybe.on_failure
    def failed(task_obj, task_run, state):
        seen.append(("failed", type(state.data).__name__))

    @maybe.on_running
    def running(task_obj, task_run, state):
        seen.append(("running", task_run.run_count))

    assert completed.__name__ == "completed"  # the decorator returns the hook
    maybe(False)
    with pytest.raises(ValueError):
        maybe(True)
    assert seen == [
        ("running", 1),
        ("completed", "yes"),
        ("running", 1),
        ("failed", "ValueError"),
    ]


# -- concurrency ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_tasks_under_gather_run_concurrently(events):
    ping, pong = asyncio.Event(), asyncio.Event()

    @task
    async def first():
        ping.set()
        await pong.wait()
        return "first"

    @task
    async def second():
        await ping.wait()
        pong.set()
        return "second"

    @flow
    async def pipeline():
        return await asyncio.gather(first(), second())

    # sequential runs would deadlock on the handshake; the bound only stops a hang
    with anyio.fail_after(10):
        assert await pipeline() == ["first", "second"]
