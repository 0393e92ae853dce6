"""Task inputs: upstream futures and states as arguments, ``wait_for``, annotations, ``.map()``."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from support import assert_transitions

from headwater import allow_failure, flow, quote, task, unmapped
from headwater.exceptions import MappingLengthMismatch, MappingMissingIterable, UnfinishedRun
from headwater.futures import HeadwaterFuture, as_completed
from headwater.states import Cancelled, Completed, Crashed, Failed, State, StateType

DEADLINE = 10


@task
def gated(gate: threading.Event, value: Any = None) -> Any:
    if not gate.wait(DEADLINE):
        raise RuntimeError("gate never opened")
    return value


@task
def identity(value: Any) -> Any:
    return value


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def fail(message: str = "upstream broke") -> None:
    raise ValueError(message)


# -- futures as arguments -------------------------------------------------------------------


def test_a_future_argument_becomes_the_upstream_value() -> None:
    @flow
    def pipeline() -> tuple[bool, int]:
        gate = threading.Event()
        upstream = gated.submit(gate, 20)
        downstream = add.submit(upstream, 1)
        early = downstream.done()
        gate.set()
        return early, downstream.result()

    assert pipeline() == (False, 21)


def test_futures_nested_in_collections_are_resolved() -> None:
    @flow
    def pipeline() -> Any:
        one, two = identity.submit(1), identity.submit(2)
        return identity.submit(
            {"list": [one, two], "tuple": (one,), "set": {two}, "dict": {"k": one}}
        ).result()

    assert pipeline() == {"list": [1, 2], "tuple": (1,), "set": {2}, "dict": {"k": 1}}


def test_a_future_called_directly_in_a_task_call() -> None:
    @flow
    def pipeline() -> int:
        return add(identity.submit(3), 4)

    assert pipeline() == 7


def test_state_arguments_are_replaced_by_their_result() -> None:
    @flow
    def pipeline() -> int:
        return add.submit(Completed(data=5), 1).result()

    assert pipeline() == 6


def test_wait_for_orders_runs_without_passing_values() -> None:
    order: list[str] = []

    @task
    def first(gate: threading.Event) -> None:
        gate.wait(DEADLINE)
        order.append("first")

    @task
    def second() -> str:
        order.append("second")
        return "done"

    @flow
    def pipeline() -> str:
        gate = threading.Event()
        upstream = first.submit(gate)
        downstream = second.submit(wait_for=[upstream])
        assert not downstream.done()
        gate.set()
        return downstream.result()

    assert pipeline() == "done"
    assert order == ["first", "second"]


# -- upstreams that did not complete --------------------------------------------------------


def test_failed_upstream_leaves_the_downstream_not_ready(events) -> None:
    ran: list[Any] = []

    @task
    def record(value: Any) -> None:
        ran.append(value)

    futures: list[HeadwaterFuture[Any]] = []

    @flow
    def pipeline() -> None:
        upstream = fail.submit()
        downstream = record.submit(upstream)
        futures.extend((upstream, downstream))
        downstream.wait()
        with pytest.raises(UnfinishedRun):
            downstream.result()

    pipeline()
    upstream, downstream = futures
    assert ran == []
    state = downstream.state
    assert state.type is StateType.PENDING
    assert state.name == "NotReady"
    assert upstream.task_run.name in state.message
    assert "did not reach a 'COMPLETED' state" in state.message
    assert_transitions(events, downstream.task_run_id, ["Pending", "NotReady"], kind="task-run")
    assert "headwater.task-run.NotReady" in events.names()


def test_failed_wait_for_upstream_leaves_the_downstream_not_ready() -> None:
    states: list[State[Any]] = []

    @flow
    def pipeline() -> None:
        upstream = fail.submit()
        states.append(identity.submit(1, wait_for=[upstream], return_state=True))

    pipeline()
    [state] = states
    assert (state.type, state.name) == (StateType.PENDING, "NotReady")


def test_not_ready_propagates_down_a_chain() -> None:
    @flow
    def pipeline() -> list[str]:
        first = fail.submit()
        second = identity.submit(first)
        third = identity.submit(second)
        third.wait()
        return [future.state.name for future in (first, second, third)]

    assert pipeline() == ["Failed", "NotReady", "NotReady"]


def test_a_failed_upstream_does_not_fail_the_flow() -> None:
    @flow
    def pipeline() -> str:
        identity.submit(fail.submit())
        return "fine"

    assert pipeline() == "fine"


def test_allow_failure_passes_the_upstream_exception() -> None:
    @flow
    def pipeline() -> tuple[Any, Any]:
        upstream = fail.submit("expected")
        received = identity.submit(allow_failure(upstream)).result()
        return received, upstream.result(raise_on_failure=False)

    received, raised = pipeline()
    assert isinstance(received, ValueError)
    assert received is raised


def test_allow_failure_in_wait_for() -> None:
    @flow
    def pipeline() -> int:
        upstream = fail.submit()
        return identity.submit(1, wait_for=[allow_failure(upstream)]).result()

    assert pipeline() == 1


def test_allow_failure_of_a_not_ready_upstream_passes_none() -> None:
    @flow
    def pipeline() -> Any:
        not_ready = identity.submit(fail.submit())
        return identity.submit(allow_failure(not_ready)).result()

    assert pipeline() is None


def test_allow_failure_of_a_completed_upstream_passes_the_value() -> None:
    @flow
    def pipeline() -> int:
        return identity.submit(allow_failure(identity.submit(9))).result()

    assert pipeline() == 9


@pytest.mark.parametrize("make_state", [Crashed, Cancelled], ids=["crashed", "cancelled"])
@pytest.mark.parametrize("allowed", [False, True], ids=["plain", "allow_failure"])
def test_crashed_and_cancelled_upstreams_always_block(make_state: Any, allowed: bool) -> None:
    ran: list[Any] = []

    @task
    def record(value: Any) -> None:
        ran.append(value)

    upstream = make_state(message="gone")
    states: list[State[Any]] = []

    @flow
    def pipeline() -> None:
        value = allow_failure(upstream) if allowed else upstream
        states.append(record.submit(value, return_state=True))

    pipeline()
    [state] = states
    assert (state.type, state.name) == (StateType.PENDING, "NotReady")
    assert "'Crashed'" in state.message or "'Cancelled'" in state.message
    assert ran == []


def test_failed_state_argument_blocks_unless_allowed() -> None:
    error = KeyError("k")

    seen: list[Any] = []

    @flow
    def pipeline() -> None:
        seen.append(identity.submit(Failed(data=error), return_state=True))
        seen.append(identity.submit(allow_failure(Failed(data=error))).result())

    pipeline()
    blocked, allowed = seen
    assert blocked.name == "NotReady"
    assert allowed is error


# -- quote ----------------------------------------------------------------------------------


def test_quote_passes_the_value_untouched_without_waiting() -> None:
    @flow
    def pipeline() -> None:
        gate = threading.Event()
        upstream = gated.submit(gate, 1)
        nested = [upstream, {"state": Completed(data=2)}]
        received = identity.submit(quote(nested)).result(timeout=DEADLINE)
        # the downstream ran while the upstream was still blocked
        assert not upstream.done()
        assert received is nested
        assert received[0] is upstream
        assert isinstance(received[1]["state"], State)
        assert identity.submit(quote(upstream)).result(timeout=DEADLINE) is upstream
        gate.set()

    pipeline()


# -- map ------------------------------------------------------------------------------------


def test_map_with_unmapped_argument() -> None:
    shared: list[int] = []

    @task
    def append_to(x: int, target: list[int]) -> int:
        target.append(x)
        return len(target)

    @flow
    def pipeline() -> list[int]:
        assert add.map([1, 2, 3], unmapped(10)).result() == [11, 12, 13]
        return append_to.map([1, 2], unmapped(shared)).result()

    counts = pipeline()
    # unmapped is shared by reference: every run appended to the same list
    assert sorted(shared) == [1, 2]
    assert sorted(counts) == [1, 2]


def test_map_over_several_iterables_and_keywords() -> None:
    @flow
    def pipeline() -> tuple[list[int], list[int]]:
        return add.map([1, 2], [10, 20]).result(), add.map(x=[1, 2], y=5).result()

    assert pipeline() == ([11, 22], [6, 7])


def test_map_length_mismatch_names_the_lengths() -> None:
    @flow
    def pipeline() -> None:
        add.map([1, 2], [1, 2, 3])

    with pytest.raises(MappingLengthMismatch) as info:
        pipeline()
    assert "'x': 2" in str(info.value) and "'y': 3" in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("args", [(1, 2), ("ab", "cd")], ids=["scalars", "strings"])
def test_map_without_an_iterable(args: tuple[Any, Any]) -> None:
    @flow
    def pipeline() -> None:
        add.map(*args)

    with pytest.raises(MappingMissingIterable, match="no iterable argument"):
        pipeline()


def test_map_does_not_iterate_strings_or_bytes() -> None:
    @flow
    def pipeline() -> list[Any]:
        return add.map(["a", "b"], "xy").result() + add.map([b"1"], b"2").result()

    assert pipeline() == ["axy", "bxy", b"12"]


def test_map_iterates_dicts_and_sets() -> None:
    @flow
    def pipeline() -> tuple[list[Any], list[Any], list[Any]]:
        return (
            identity.map({"a": 1, "b": 2}).result(),
            sorted(identity.map({3, 4}).result()),
            identity.map(range(2)).result(),
        )

    assert pipeline() == (["a", "b"], [3, 4], [0, 1])


def test_map_resolves_future_iterables_first() -> None:
    @flow
    def pipeline() -> list[int]:
        return add.map(identity.submit([1, 2]), 100).result()

    assert pipeline() == [101, 102]


def test_map_looks_through_allow_failure_and_quote() -> None:
    @flow
    def pipeline() -> list[Any]:
        upstream = fail.submit()
        wrapped = identity.map(allow_failure([upstream, identity.submit(1)])).result()
        quoted = identity.map(quote([[1], [2]])).result()
        return [*wrapped, *quoted]

    first, second, *quoted = pipeline()
    assert isinstance(first, ValueError)
    assert second == 1
    assert quoted == [[1], [2]]


def test_map_return_state_gives_states() -> None:
    @task
    def check(x: int) -> int:
        if x == 2:
            raise ValueError("two")
        return x

    states: list[State[Any]] = []

    @flow
    def pipeline() -> None:
        returned = check.map([1, 2, 3], return_state=True)
        assert type(returned) is list
        states.extend(returned)

    pipeline()
    assert [state.type for state in states] == [
        StateType.COMPLETED,
        StateType.FAILED,
        StateType.COMPLETED,
    ]
    assert states[0].result() == 1


def test_map_of_an_empty_list_submits_nothing() -> None:
    @flow
    def pipeline() -> list[Any]:
        return identity.map([]).result()

    assert pipeline() == []


def test_futures_inside_dataclasses_and_models_are_resolved():
    import dataclasses

    import pydantic

    @dataclasses.dataclass(frozen=True)
    class Box:
        value: object
        label: str = "box"

    class Model(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
        value: object

    @task
    def produce(x: int) -> int:
        return x * 10

    @task
    def unbox(box: Box, model: Model) -> tuple[object, object, str]:
        return box.value, model.value, box.label

    @flow
    def pipeline() -> tuple[object, object, str]:
        first = produce.submit(1)
        second = produce.submit(2)
        return unbox(Box(first), Model(value=second))

    assert pipeline() == (10, 20, "box")


def test_as_completed_yields_a_repeated_future_once():
    @task
    def one() -> int:
        return 1

    @flow
    def pipeline() -> int:
        future = one.submit()
        return len(list(as_completed([future, future])))

    assert pipeline() == 1
