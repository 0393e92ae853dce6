"""``headwater.runtime``: facts about the current run, readable anywhere, never raising."""

from __future__ import annotations

from typing import Any

import pytest

from headwater import flow, tags, task
from headwater.runtime import deployment, flow_run, task_run


def _flow_facts() -> dict[str, Any]:
    return {
        "id": flow_run.id,
        "name": flow_run.name,
        "flow_name": flow_run.flow_name,
        "parameters": flow_run.parameters,
        "tags": flow_run.tags,
        "run_count": flow_run.run_count,
        "parent_flow_run_id": flow_run.parent_flow_run_id,
    }


def _task_facts() -> dict[str, Any]:
    return {
        "id": task_run.id,
        "name": task_run.name,
        "task_name": task_run.task_name,
        "parameters": task_run.parameters,
        "tags": task_run.tags,
        "run_count": task_run.run_count,
    }


def test_flow_run_attributes_inside_a_flow() -> None:
    seen: dict[str, Any] = {}

    @flow(flow_run_name="facts-{x}")
    def report_flow(x: int, label: str = "a") -> None:
        seen.update(_flow_facts())

    with tags("nightly"):
        state = report_flow(1, return_state=True)
    assert seen == {
        "id": str(state.state_details.flow_run_id),
        "name": "facts-1",
        "flow_name": "report-flow",
        "parameters": {"x": 1, "label": "a"},
        "tags": ["nightly"],
        "run_count": 1,
        "parent_flow_run_id": None,
    }


def test_flow_run_parameters_are_a_copy() -> None:
    @flow
    def pipeline(x: int) -> int:
        flow_run.parameters["x"] = 99
        return flow_run.parameters["x"]

    assert pipeline(1) == 1


def test_flow_run_count_grows_on_retries() -> None:
    counts: list[int] = []

    @flow(retries=1)
    def flaky() -> str:
        counts.append(flow_run.run_count)
        if len(counts) == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    assert flaky() == "ok"
    assert counts == [1, 2]


def test_subflow_sees_its_parent() -> None:
    seen: dict[str, Any] = {}

    @flow
    def child() -> None:
        seen["child"] = flow_run.id
        seen["parent_of_child"] = flow_run.parent_flow_run_id
        seen["root_of_child"] = flow_run.root_flow_run_id

    @flow
    def parent() -> None:
        seen["parent"] = flow_run.id
        child()
        # back in the parent once the subflow returns
        seen["after"] = flow_run.id

    parent()
    assert seen["parent_of_child"] == seen["parent"]
    assert seen["root_of_child"] == seen["parent"]
    assert seen["child"] != seen["parent"]
    assert seen["after"] == seen["parent"]


def test_task_run_attributes_inside_a_task() -> None:
    seen: dict[str, Any] = {}
    flow_seen: dict[str, Any] = {}
    states: list[Any] = []

    @task(task_run_name="step-{x}", tags=["io"])
    def step(x: int, y: str = "b") -> None:
        seen.update(_task_facts())
        flow_seen.update(_flow_facts())

    @flow
    def pipeline() -> None:
        states.append(step(2, return_state=True))

    flow_state = pipeline(return_state=True)
    [task_state] = states
    assert seen == {
        "id": str(task_state.state_details.task_run_id),
        "name": "step-2",
        "task_name": "step",
        "parameters": {"x": 2, "y": "b"},
        "tags": ["io"],
        "run_count": 1,
    }
    # the flow run is visible from inside its tasks
    assert flow_seen["id"] == str(flow_state.state_details.flow_run_id)
    assert flow_seen["flow_name"] == "pipeline"


def test_task_run_name_defaults_to_task_name_and_index() -> None:
    names: list[str] = []

    @task
    def step() -> None:
        names.append(task_run.name)

    @flow
    def pipeline() -> None:
        step()
        step()

    pipeline()
    assert names == ["step-0", "step-1"]


def test_task_run_count_grows_on_retries() -> None:
    counts: list[int] = []

    @task(retries=2)
    def flaky() -> str:
        counts.append(task_run.run_count)
        if len(counts) < 3:
            raise RuntimeError("not yet")
        return "ok"

    @flow
    def pipeline() -> str:
        return flaky()

    assert pipeline() == "ok"
    assert counts == [1, 2, 3]


def test_task_attributes_are_empty_in_a_flow_outside_tasks() -> None:
    @flow
    def pipeline() -> dict[str, Any]:
        return _task_facts()

    assert pipeline() == {
        "id": None,
        "name": None,
        "task_name": None,
        "parameters": {},
        "tags": [],
        "run_count": 0,
    }


def test_task_run_outside_a_flow_still_has_facts() -> None:
    @task
    def alone(x: int) -> dict[str, Any]:
        return {"task": _task_facts(), "flow_id": flow_run.id}

    facts = alone(5)
    assert facts["task"]["task_name"] == "alone"
    assert facts["task"]["parameters"] == {"x": 5}
    assert facts["flow_id"] is None


def test_defaults_outside_any_run() -> None:
    assert _flow_facts() == {
        "id": None,
        "name": None,
        "flow_name": None,
        "parameters": {},
        "tags": [],
        "run_count": 0,
        "parent_flow_run_id": None,
    }
    assert _task_facts() == {
        "id": None,
        "name": None,
        "task_name": None,
        "parameters": {},
        "tags": [],
        "run_count": 0,
    }
    assert flow_run.flow_version is None
    assert flow_run.root_flow_run_id is None
    assert flow_run.scheduled_start_time is None
    assert deployment.id is None
    assert deployment.parameters == {}


@pytest.mark.parametrize("module", [flow_run, task_run, deployment], ids=lambda m: m.__name__)
def test_unknown_attribute_raises_attribute_error(module: Any) -> None:
    with pytest.raises(AttributeError, match="no attribute 'not_a_thing'"):
        module.not_a_thing  # noqa: B018
    assert not hasattr(module, "also_missing")


def test_every_listed_attribute_reads_outside_a_run() -> None:
    for module in (flow_run, task_run, deployment):
        for name in module.__all__:
            getattr(module, name)
