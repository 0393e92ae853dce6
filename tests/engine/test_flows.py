"""Flows: calling, return values, final-state rules, subflows, retries, names, timeouts."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from support import assert_transitions

from headwater import flow, tags, task
from headwater.engine.flows import Flow
from headwater.events import get_bus
from headwater.exceptions import FailedRun, FlowRunTimeoutError, ParameterTypeError
from headwater.runtime import flow_run
from headwater.states import Completed, Failed, State, StateType


def _related(event, role: str) -> list[str]:
    return [
        r["headwater.resource.id"]
        for r in event.related
        if r.get("headwater.resource.role") == role
    ]


def _noop():
    return None


# -- calling -----------------------------------------------------------------------------


def test_sync_flow_returns_its_value(events):
    @flow
    def add(a, b):
        return a + b

    assert add(1, 2) == 3
    state = add(2, 3, return_state=True)
    assert state.is_completed()
    assert state.result() == 5
    assert_transitions(events, state.state_details.flow_run_id, ["Pending", "Running", "Completed"])


@pytest.mark.anyio
async def test_async_flow_returns_its_value(events):
    @flow
    async def add(a, b):
        await asyncio.sleep(0)
        return a + b

    assert await add(1, 2) == 3
    state = await add(1, 1, return_state=True)
    assert await state.result() == 2  # sync-compatible: awaited in async code, as Prefect
    assert_transitions(events, state.state_details.flow_run_id, ["Pending", "Running", "Completed"])


def test_default_name_uses_dashes_and_fn_is_the_function():
    def my_nice_flow():
        return 1

    f = flow(my_nice_flow)
    assert f.name == "my-nice-flow"
    assert f.fn is my_nice_flow
    assert flow(name="custom")(my_nice_flow).name == "custom"


@pytest.mark.parametrize("bad", ["a/b", "a%b", "a&b", "a<b", "a>b"])
def test_name_with_forbidden_characters_is_refused(bad):
    with pytest.raises(ValueError, match="not allowed"):
        flow(name=bad)(_noop)


def test_flow_needs_a_callable():
    with pytest.raises(TypeError, match="needs a function"):
        Flow(42)  # type: ignore[arg-type]


# -- failures ------------------------------------------------------------------------------


def test_raising_flow_reraises_the_original_exception(events):
    error = ValueError("bad input")

    @flow
    def broken():
        raise error

    with pytest.raises(ValueError) as info:
        broken()
    assert info.value is error


def test_raising_flow_state_is_failed_with_prefect_message(events):
    @flow
    def broken():
        raise ValueError("bad input")

    state = broken(return_state=True)
    assert state.is_failed()
    assert state.name == "Failed"
    assert state.message == "Flow run encountered an exception: ValueError: bad input"
    assert isinstance(state.data, ValueError)
    assert state.state_details.retriable is False
    assert_transitions(events, state.state_details.flow_run_id, ["Pending", "Running", "Failed"])
    final = events.for_resource(f"headwater.flow-run.{state.state_details.flow_run_id}")[-1]
    assert final.resource["headwater.state-message"] == state.message


@pytest.mark.anyio
async def test_raising_async_flow_reraises_and_fails(events):
    @flow
    async def broken():
        raise KeyError("k")

    with pytest.raises(KeyError):
        await broken()
    state = await broken(return_state=True)
    assert state.is_failed()
    assert state.message == "Flow run encountered an exception: KeyError: 'k'"


def test_returning_completed_by_hand_is_used_as_is(events):
    @flow
    def by_hand():
        return Completed(message="my way", data=7)

    state = by_hand(return_state=True)
    assert state.is_completed()
    assert state.message == "my way"
    assert by_hand() == 7


def test_returning_failed_by_hand_raises_failed_run(events):
    @flow
    def by_hand():
        return Failed(message="nope")

    with pytest.raises(FailedRun, match="nope"):
        by_hand()
    state = by_hand(return_state=True)
    assert state.is_failed()
    assert state.message == "nope"
    assert_transitions(events, state.state_details.flow_run_id, ["Pending", "Running", "Failed"])


def test_returning_task_states_aggregates(events):
    @task
    def ok():
        return 1

    @task
    def bad():
        raise ValueError("task failed")

    @flow
    def all_good():
        return [ok(return_state=True), ok(return_state=True)]

    @flow
    def one_bad():
        return [ok(return_state=True), bad(return_state=True)]

    good = all_good(return_state=True)
    assert good.is_completed()
    assert good.message == "All states completed."
    assert [inner.result() for inner in good.result()] == [1, 1]

    state = one_bad(return_state=True)
    assert state.is_failed()
    assert state.message == "1/2 states failed."
    with pytest.raises(ValueError, match="task failed"):
        one_bad()


def test_returning_a_generator_gives_a_list(events):
    @flow
    def gen():
        return (i for i in range(3))

    assert gen() == [0, 1, 2]


def test_unreturned_task_failure_does_not_fail_the_flow(events):
    @task
    def bad():
        raise ValueError("ignored")

    @flow
    def tolerant():
        inner = bad(return_state=True)
        bad.submit()  # an unawaited failed future is ignored too
        return inner.is_failed()

    state = tolerant(return_state=True)
    assert state.is_completed()
    assert state.result() is True


# -- subflows -------------------------------------------------------------------------------


def test_subflow_records_its_parent(events):
    seen = {}

    @flow
    def child():
        seen["child"] = flow_run.id
        seen["parent_of_child"] = flow_run.parent_flow_run_id
        return "c"

    @flow
    def parent():
        seen["parent"] = flow_run.id
        return child()

    assert parent() == "c"
    assert seen["parent_of_child"] == seen["parent"]
    assert seen["child"] != seen["parent"]
    child_events = events.for_resource(f"headwater.flow-run.{seen['child']}")
    assert [e.event for e in child_events] == [
        "headwater.flow-run.Pending",
        "headwater.flow-run.Running",
        "headwater.flow-run.Completed",
    ]
    for event in child_events:
        assert _related(event, "parent-flow-run") == [f"headwater.flow-run.{seen['parent']}"]
        assert event.payload["flow_run"]["parent_flow_run_id"] == seen["parent"]
    parent_events = events.for_resource(f"headwater.flow-run.{seen['parent']}")
    assert all(_related(e, "parent-flow-run") == [] for e in parent_events)


@pytest.mark.anyio
async def test_async_subflow_of_async_flow(events):
    seen = {}

    @flow
    async def child():
        seen["child_parent"] = flow_run.parent_flow_run_id
        return 2

    @flow
    async def parent():
        seen["parent"] = flow_run.id
        return await child() * 2

    assert await parent() == 4
    assert seen["child_parent"] == seen["parent"]


def test_async_subflow_of_sync_flow_runs_to_completion(events):
    @flow
    async def child():
        await asyncio.sleep(0)
        return "done"

    @flow
    def parent():
        return child()

    assert parent() == "done"


def test_failing_subflow_raises_in_parent(events):
    @flow
    def child():
        raise RuntimeError("child broke")

    @flow
    def parent():
        try:
            child()
        except RuntimeError as exc:
            return str(exc)

    assert parent() == "child broke"


# -- retries -----------------------------------------------------------------------------


def test_flow_retries_reenter_running(events):
    attempts = []

    @flow(retries=2)
    def flaky():
        attempts.append(flow_run.run_count)
        if len(attempts) < 2:
            raise ValueError("first time")
        return "ok"

    state = flaky(return_state=True)
    assert state.result() == "ok"
    assert attempts == [1, 2]
    run_id = state.state_details.flow_run_id
    assert_transitions(
        events, run_id, ["Pending", "Running", "AwaitingRetry", "Running", "Completed"]
    )
    final = events.for_resource(f"headwater.flow-run.{run_id}")[-1]
    assert final.payload["flow_run"]["run_count"] == 2


def test_flow_retries_exhausted_end_failed(events):
    @flow(retries=1, retry_delay_seconds=0.01)
    def always():
        raise ValueError("always")

    state = always(return_state=True)
    assert state.is_failed()
    assert_transitions(
        events,
        state.state_details.flow_run_id,
        ["Pending", "Running", "AwaitingRetry", "Running", "Failed"],
    )


@pytest.mark.anyio
async def test_async_flow_retries(events):
    calls = []

    @flow(retries=1)
    async def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("once")
        return len(calls)

    assert await flaky() == 2


@pytest.mark.parametrize("bad", [-1, "1", [1, 2]])
def test_flow_retry_delay_must_be_a_non_negative_number(bad):
    with pytest.raises(ValueError, match="retry_delay_seconds"):
        flow(retry_delay_seconds=bad)(_noop)


@pytest.mark.parametrize("bad", [-1, 1.5, "2"])
def test_flow_retries_must_be_a_non_negative_int(bad):
    with pytest.raises(ValueError, match="retries"):
        flow(retries=bad)(_noop)


# -- run names -------------------------------------------------------------------------------


def test_flow_run_name_template(events):
    @flow(flow_run_name="run-{x}-{y}")
    def named(x, y=2):
        return flow_run.name

    assert named(1) == "run-1-2"
    state = named(5, return_state=True)
    (running,) = [
        e
        for e in events.for_resource(f"headwater.flow-run.{state.state_details.flow_run_id}")
        if e.event.endswith(".Running")
    ]
    assert running.resource["headwater.resource.name"] == "run-5-2"


def test_flow_run_name_callable(events):
    @flow(flow_run_name=lambda: "from-callable")
    def plain():
        return flow_run.name

    @flow(flow_run_name=lambda parameters: f"x={parameters['x']}")
    def with_params(x):
        return flow_run.name

    assert plain() == "from-callable"
    assert with_params(3) == "x=3"


def test_flow_run_name_template_with_missing_parameter_is_a_clear_error(events):
    @flow(flow_run_name="run-{nope}")
    def named(x):
        return x

    with pytest.raises(ValueError, match=r"'nope'.*not a parameter.*\['x'\]"):
        named(1)


def test_run_name_error_leaves_the_run_final_not_pending(events):
    seen = []

    @flow(flow_run_name="run-{nope}")
    def named(x):
        seen.append(x)

    with pytest.raises(ValueError):
        named(1)
    assert seen == []
    (run_id,) = {e.resource_id for e in events if e.event.startswith("headwater.flow-run.")}
    assert events.state_names(run_id.rsplit(".", 1)[1]) == ["Pending", "Crashed"]


def test_default_flow_run_name_is_a_slug(events):
    @flow
    def plain():
        return flow_run.name

    name = plain()
    assert len(name.split("-")) == 2


# -- options ---------------------------------------------------------------------------------


def test_with_options_copies_and_overrides():
    @flow(retries=1, timeout_seconds=5)
    def original():
        return 1

    changed = original.with_options(name="changed", retries=3)
    assert (changed.name, changed.retries, changed.timeout_seconds) == ("changed", 3, 5)
    assert (original.name, original.retries) == ("original", 1)
    assert changed.fn is original.fn
    assert changed() == 1
    with pytest.raises(TypeError, match="unknown option"):
        original.with_options(colour="red")


def test_with_options_validates_like_the_decorator():
    @flow
    def original():
        return 1

    with pytest.raises(ValueError, match="not allowed"):
        original.with_options(name="a/b")


# -- timeouts -------------------------------------------------------------------------------


def test_sync_flow_timeout_fails_as_timed_out(events):
    @flow(timeout_seconds=0.2)
    def slow():
        while True:
            time.sleep(0.01)

    state = slow(return_state=True)
    assert state.type is StateType.FAILED
    assert state.name == "TimedOut"
    assert state.message == "Flow run exceeded timeout of 0.2 second(s)"
    assert isinstance(state.data, FlowRunTimeoutError)
    assert_transitions(events, state.state_details.flow_run_id, ["Pending", "Running", "TimedOut"])
    with pytest.raises(FlowRunTimeoutError):
        slow()


@pytest.mark.anyio
async def test_async_flow_timeout_fails_as_timed_out(events):
    @flow(timeout_seconds=0.1)
    async def slow():
        await asyncio.sleep(10)

    state = await slow(return_state=True)
    assert state.name == "TimedOut"
    assert state.message == "Flow run exceeded timeout of 0.1 second(s)"
    assert_transitions(events, state.state_details.flow_run_id, ["Pending", "Running", "TimedOut"])


def test_timeout_must_be_positive():
    with pytest.raises(ValueError, match="timeout_seconds"):
        flow(timeout_seconds=0)(_noop)


# -- cancellation ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_cancelling_an_async_flow_crashes_the_run(events):
    started = asyncio.Event()
    seen = {}

    @flow
    async def slow():
        seen["id"] = flow_run.id
        started.set()
        await asyncio.sleep(10)

    running = asyncio.ensure_future(slow())
    await started.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    await get_bus().aflush(timeout=10)
    assert_transitions(events, seen["id"], ["Pending", "Running", "Crashed"])
    final = events.for_resource(f"headwater.flow-run.{seen['id']}")[-1]
    assert "cancelled" in final.resource["headwater.state-message"]


class _Stop(BaseException):
    pass


def test_base_exception_in_sync_flow_crashes_and_propagates(events):
    stop = _Stop()
    seen = {}

    @flow
    def interrupted():
        seen["id"] = flow_run.id
        raise stop

    with pytest.raises(_Stop) as info:
        interrupted()
    assert info.value is stop
    assert_transitions(events, seen["id"], ["Pending", "Running", "Crashed"])
    final = events.for_resource(f"headwater.flow-run.{seen['id']}")[-1]
    assert final.resource["headwater.state-message"] == (
        "Execution was interrupted by an unexpected exception: _Stop"
    )


# -- events ------------------------------------------------------------------------------


def test_each_transition_emits_one_event_with_a_consistent_chain(events):
    @flow(retries=1)
    def flaky():
        if flow_run.run_count == 1:
            raise ValueError("again")
        return 1

    state = flaky(return_state=True)
    run_events = events.for_resource(f"headwater.flow-run.{state.state_details.flow_run_id}")
    assert len(run_events) == 5
    assert len({e.id for e in run_events}) == 5
    assert run_events[0].follows is None
    for previous, current in itertools.pairwise(run_events):
        assert current.follows == previous.id
        assert current.payload["initial_state"]["id"] == str(previous.id)
        assert current.payload["intended"]["from"] == previous.payload["validated_state"]["type"]
    for event in run_events:
        assert event.payload["validated_state"]["id"] == str(event.id)
        assert event.payload["validated_state"]["name"] == event.event.rsplit(".", 1)[1]
    assert run_events[-1].id == state.id


def test_flow_run_tags_come_from_the_tags_context(events):
    @flow
    def tagged():
        return sorted(flow_run.tags)

    with tags("a", "b"):
        state = tagged(return_state=True)
    assert state.result() == ["a", "b"]
    event = events.for_resource(f"headwater.flow-run.{state.state_details.flow_run_id}")[-1]
    assert sorted(_related(event, "tag")) == ["headwater.tag.a", "headwater.tag.b"]


def test_binding_error_raises_before_any_run(events):
    @flow
    def one(x):
        return x

    with pytest.raises(ParameterTypeError):
        one(1, 2)
    get_bus().flush(timeout=10)
    assert events.names("headwater.flow-run.") == []


def test_state_result_of_returned_state_is_a_state(events):
    @flow
    def returns_state():
        return Completed(data="inner")

    assert isinstance(returns_state(return_state=True), State)


def test_retry_after_a_returned_failed_state_returns_the_new_value(events):
    results = iter([Failed(message="not yet"), 5])

    @flow(retries=1)
    def flaky():
        return next(results)

    assert flaky() == 5
