"""The events flow runs and task runs publish: one per transition, in Prefect's shape."""

from __future__ import annotations

import datetime
import itertools
import threading
import uuid
from typing import Any

import msgspec
import pytest
from support import EventLog, assert_transitions

from headwater import flow, tags, task
from headwater.events import Event, get_bus
from headwater.events.schema import decode_event
from headwater.settings import temporary_settings
from headwater.states import State

DEADLINE = 10
UTC = datetime.timezone.utc


@task
def double(x: int) -> int:
    return x * 2


def _run_events(log: EventLog, kind: str, run_id: Any) -> list[Event]:
    return log.for_resource(f"headwater.{kind}.{run_id}")


def _two_level_run(log: EventLog) -> tuple[State[Any], list[State[Any]]]:
    """A flow that calls one task inline and submits another, inside ``tags("etl")``."""
    task_states: list[State[Any]] = []

    @task(tags=["db"])
    def load(x: int) -> int:
        return x + 1

    @flow(flow_run_name="events-run")
    def pipeline(x: int) -> int:
        task_states.append(load(x, return_state=True))
        task_states.append(double.submit(x, return_state=True))
        return x

    with tags("etl"):
        state = pipeline(3, return_state=True)
    return state, task_states


def test_each_transition_publishes_exactly_one_event(events) -> None:
    state, (inline, submitted) = _two_level_run(events)
    flow_run_id = state.state_details.flow_run_id
    assert_transitions(events, flow_run_id, ["Pending", "Running", "Completed"])
    for task_state in (inline, submitted):
        assert_transitions(
            events,
            task_state.state_details.task_run_id,
            ["Pending", "Running", "Completed"],
            kind="task-run",
        )
    assert len(events) == 9
    assert len({event.id for event in events}) == 9
    assert events.names("headwater.flow-run.") == [
        "headwater.flow-run.Pending",
        "headwater.flow-run.Running",
        "headwater.flow-run.Completed",
    ]


def test_retries_and_failures_each_publish_their_state(events) -> None:
    attempts: list[int] = []
    states: list[State[Any]] = []

    @task(retries=2, retry_delay_seconds=[0, 0.01])
    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("again")
        return "ok"

    @task
    def broken() -> None:
        raise ValueError("broken")

    @flow
    def pipeline() -> None:
        states.append(flaky(return_state=True))
        states.append(broken(return_state=True))

    pipeline()
    flaky_state, broken_state = states
    assert_transitions(
        events,
        flaky_state.state_details.task_run_id,
        ["Pending", "Running", "Retrying", "AwaitingRetry", "Retrying", "Completed"],
        kind="task-run",
    )
    assert_transitions(
        events, broken_state.state_details.task_run_id, ["Pending", "Running", "Failed"], "task-run"
    )


def test_failed_flow_publishes_failed(events) -> None:
    @flow
    def pipeline() -> None:
        raise ValueError("no")

    state = pipeline(return_state=True)
    assert_transitions(events, state.state_details.flow_run_id, ["Pending", "Running", "Failed"])
    [last] = [e for e in events if e.event == "headwater.flow-run.Failed"]
    assert last.resource["headwater.state-message"].startswith("Flow run encountered an exception")


def test_flow_run_resource_labels(events) -> None:
    state, _ = _two_level_run(events)
    run_id = state.state_details.flow_run_id
    flow_events = _run_events(events, "flow-run", run_id)
    for event, (name, type_, count) in zip(
        flow_events,
        [("Pending", "PENDING", "0"), ("Running", "RUNNING", "1"), ("Completed", "COMPLETED", "1")],
        strict=True,
    ):
        resource = event.resource
        assert resource.id == f"headwater.flow-run.{run_id}"
        # as in Prefect, flow_run_name is rendered when the run starts: Pending has the slug
        if name != "Pending":
            assert resource.name == "events-run"
        assert resource["headwater.state-name"] == name
        assert resource["headwater.state-type"] == type_
        assert resource["headwater.run-count"] == count
        assert "headwater.orchestration" not in resource
        assert datetime.datetime.fromisoformat(resource["headwater.state-timestamp"])


def test_task_run_resource_labels(events) -> None:
    _, (inline, _) = _two_level_run(events)
    task_run_id = inline.state_details.task_run_id
    task_events = _run_events(events, "task-run", task_run_id)
    assert [e.resource["headwater.state-type"] for e in task_events] == [
        "PENDING",
        "RUNNING",
        "COMPLETED",
    ]
    for event in task_events:
        assert event.resource.id == f"headwater.task-run.{task_run_id}"
        assert event.resource.name == "load-0"
        assert event.resource["headwater.orchestration"] == "client"


def test_related_resources(events) -> None:
    state, (inline, _) = _two_level_run(events)
    flow_run_id = state.state_details.flow_run_id

    flow_event = _run_events(events, "flow-run", flow_run_id)[-1]
    flow_resource = flow_event.resource_in_role("flow")
    assert flow_resource is not None
    assert flow_resource.id == "headwater.flow.pipeline"
    assert flow_resource.name == "pipeline"
    assert [r.id for r in flow_event.resources_in_role("tag")] == ["headwater.tag.etl"]
    assert flow_event.resource_in_role("flow-run") is None

    task_event = _run_events(events, "task-run", inline.state_details.task_run_id)[-1]
    flow_run = task_event.resource_in_role("flow-run")
    assert flow_run is not None
    assert flow_run.id == f"headwater.flow-run.{flow_run_id}"
    assert flow_run.name == "events-run"
    assert task_event.find_resource_label("related:flow:headwater.resource.id") == (
        "headwater.flow.pipeline"
    )
    task_resource = task_event.resource_in_role("task")
    assert task_resource is not None
    assert task_resource.id.startswith("headwater.task.")
    assert ".load-" in task_resource.id
    assert task_resource.name == "load"
    assert sorted(r.id for r in task_event.resources_in_role("tag")) == [
        "headwater.tag.db",
        "headwater.tag.etl",
    ]
    assert all(r.role for r in task_event.related)


def test_subflow_events_relate_to_the_parent(events) -> None:
    ids: dict[str, Any] = {}

    @flow
    def child() -> None:
        pass

    @flow
    def parent() -> None:
        ids["child"] = child(return_state=True).state_details.flow_run_id

    ids["parent"] = parent(return_state=True).state_details.flow_run_id
    child_event = _run_events(events, "flow-run", ids["child"])[0]
    related = child_event.resource_in_role("parent-flow-run")
    assert related is not None and related.id == f"headwater.flow-run.{ids['parent']}"


def test_payload_intended_initial_and_validated_states(events) -> None:
    state, _ = _two_level_run(events)
    flow_events = _run_events(events, "flow-run", state.state_details.flow_run_id)
    pending, running, completed = (event.payload for event in flow_events)

    assert pending["intended"] == {"from": None, "to": "PENDING"}
    assert pending["initial_state"] is None
    assert running["intended"] == {"from": "PENDING", "to": "RUNNING"}
    assert completed["intended"] == {"from": "RUNNING", "to": "COMPLETED"}
    # each event's initial state is the previous event's validated state
    assert running["initial_state"] == pending["validated_state"]
    assert completed["initial_state"] == running["validated_state"]
    validated = completed["validated_state"]
    assert validated["id"] == str(state.id)
    assert (validated["type"], validated["name"]) == ("COMPLETED", "Completed")
    assert validated["timestamp"] == state.timestamp.isoformat()


def test_payload_carries_the_run(events) -> None:
    state, (inline, _) = _two_level_run(events)
    flow_run_id = state.state_details.flow_run_id
    flow_payload = _run_events(events, "flow-run", flow_run_id)[-1].payload["flow_run"]
    assert flow_payload["id"] == str(flow_run_id)
    assert flow_payload["name"] == "events-run"
    assert flow_payload["flow_name"] == "pipeline"
    assert flow_payload["parameters"] == {"x": 3}
    assert flow_payload["tags"] == ["etl"]
    assert flow_payload["run_count"] == 1

    task_event = _run_events(events, "task-run", inline.state_details.task_run_id)[-1]
    task_payload = task_event.payload["task_run"]
    assert task_payload["flow_run_id"] == str(flow_run_id)
    assert task_payload["task_name"] == "load"
    assert task_payload["tags"] == ["db", "etl"]


def test_event_ids_are_state_ids_and_follow_each_other(events) -> None:
    state, (inline, _) = _two_level_run(events)
    for kind, run_id, final in (
        ("flow-run", state.state_details.flow_run_id, state),
        ("task-run", inline.state_details.task_run_id, inline),
    ):
        run_events = _run_events(events, kind, run_id)
        assert run_events[0].follows is None
        for previous, event in itertools.pairwise(run_events):
            assert event.follows == previous.id
            assert event.payload["initial_state"]["id"] == str(previous.id)
        assert run_events[-1].id == final.id
        assert all(isinstance(event.id, uuid.UUID) for event in run_events)


def test_occurred_is_timezone_aware_utc(events) -> None:
    state, _ = _two_level_run(events)
    for event in events:
        assert event.occurred.tzinfo is not None
        assert event.occurred.utcoffset() == datetime.timedelta(0)
    final = _run_events(events, "flow-run", state.state_details.flow_run_id)[-1]
    assert final.occurred == state.timestamp


def test_events_serialise_and_round_trip(events) -> None:
    _two_level_run(events)
    for event in events:
        data = msgspec.json.encode(event)
        decoded = decode_event(data)
        assert decoded.id == event.id
        assert decoded.event == event.event
        assert decoded.follows == event.follows
        assert decoded.occurred == event.occurred
        assert dict(decoded.resource) == dict(event.resource)
        assert decoded.payload == msgspec.json.decode(msgspec.json.encode(event.payload))


def test_non_json_parameters_appear_as_repr(events) -> None:
    class Thing:
        def __repr__(self) -> str:
            return "Thing(7)"

    @flow
    def pipeline(x, thing, when, items) -> None:
        pass

    when = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    state = pipeline(1, Thing(), when, {"a": (1, 2)}, return_state=True)
    for event in _run_events(events, "flow-run", state.state_details.flow_run_id):
        parameters = event.payload["flow_run"]["parameters"]
        assert msgspec.json.decode(msgspec.json.encode(parameters)) == {
            "x": 1,
            "thing": "Thing(7)",
            "when": "2024-01-02T03:04:05Z",
            "items": {"a": [1, 2]},
        }
        msgspec.json.encode(event)


def test_a_bus_watch_sees_a_runs_events_in_order() -> None:
    seen: list[Any] = []

    @task
    def gated(gate: threading.Event) -> None:
        gate.wait(DEADLINE)

    @task
    def after() -> str:
        return "after"

    @flow
    def pipeline() -> None:
        gate = threading.Event()
        upstream = gated.submit(gate)
        downstream = after.submit(wait_for=[upstream])
        # downstream is Pending, waiting on the gate: watch it from here on
        with get_bus().watch(f"headwater.task-run.{downstream.task_run_id}") as watch:
            gate.set()
            downstream.wait()
            seen.extend(item.to_event() for item in watch.drain())
        seen.append(downstream.state)

    pipeline()
    *watched, final = seen
    assert [event.event for event in watched] == [
        "headwater.task-run.Running",
        "headwater.task-run.Completed",
    ]
    assert watched[1].follows == watched[0].id
    assert watched[1].id == final.id


@pytest.mark.anyio
async def test_a_subscription_sees_a_runs_events_in_order() -> None:
    @flow
    async def pipeline() -> int:
        return await double.submit(2)

    async with get_bus().subscribe(buffer_size=10_000, name="test-order") as subscription:
        state = await pipeline(return_state=True)
        resource_id = f"headwater.flow-run.{state.state_details.flow_run_id}"
        names: list[str] = []
        while "headwater.flow-run.Completed" not in names:
            batch = await subscription.get_batch(max_latency=0)
            names.extend(
                item.event
                for item in batch
                if isinstance(item, Event) and item.resource_id == resource_id
            )
    assert names == [
        "headwater.flow-run.Pending",
        "headwater.flow-run.Running",
        "headwater.flow-run.Completed",
    ]


def test_hooks_fire_with_events_disabled() -> None:
    fired: list[str] = []

    @task(on_completion=[lambda task, run, state: fired.append(f"task {state.name}")])
    def step() -> int:
        return 1

    @task(on_failure=[lambda task, run, state: fired.append(f"task {state.name}")])
    def bad() -> None:
        raise ValueError("bad")

    @flow(
        on_running=[lambda flow, run, state: fired.append(f"flow {state.name}")],
        on_completion=[lambda flow, run, state: fired.append(f"flow {state.name}")],
    )
    def pipeline() -> int:
        bad(return_state=True)
        return step.submit().result()

    with temporary_settings(events_enabled=False):
        assert pipeline() == 1
    assert fired == ["flow Running", "task Failed", "task Completed", "flow Completed"]
