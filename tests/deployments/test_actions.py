"""Automation actions and triggers that act on deployments."""

from __future__ import annotations

import datetime
import sqlite3
from pathlib import Path

import pytest
from serve_helpers import wait_until
from served_flows import greet, sleepy

from headwater.automations import Automation, EventTrigger
from headwater.automations.model import parse_automation
from headwater.automations.store import read_automations
from headwater.deployments import runs
from headwater.deployments.store import read_deployment
from headwater.events import emit_event
from headwater.exceptions import AutomationValidationError, DeploymentValidationError
from headwater.runner.deployment import RunnerDeployment

UTC = datetime.timezone.utc


def _wait(check, timeout: float = 20.0):
    return wait_until(check, timeout, "the automation's action")


def test_run_deployment_needs_a_deployment_and_refuses_an_inferred_loop() -> None:
    with pytest.raises(AutomationValidationError, match="deployment_id"):
        parse_automation(
            {"name": "a", "trigger": {"expect": ["x"]}, "actions": [{"type": "run-deployment"}]}
        )
    with pytest.raises(AutomationValidationError, match="would run the deployment again"):
        parse_automation(
            {
                "name": "loop",
                "trigger": {"expect": ["headwater.flow-run.*"]},
                "actions": [{"type": "run-deployment", "source": "inferred"}],
            }
        )
    with pytest.raises(AutomationValidationError, match="schedule_after"):
        parse_automation(
            {
                "name": "a",
                "trigger": {"expect": ["x"]},
                "actions": [
                    {
                        "type": "run-deployment",
                        "deployment_id": "01a23f13-9d04-7eba-8a73-b426d5463528",
                        "schedule_after": -1,
                    }
                ],
            }
        )
    # inferring from something other than a run's start is fine
    parse_automation(
        {
            "name": "ok",
            "trigger": {"expect": ["headwater.flow-run.Failed"]},
            "actions": [{"type": "run-deployment", "source": "inferred"}],
        }
    )


def test_an_event_pauses_and_resumes_a_deployment(home: Path) -> None:
    deployment = greet.to_deployment("d", interval=600).apply()
    Automation(
        name="pause on alarm",
        trigger=EventTrigger(expect=["ops.alarm"]),
        actions=[{"type": "pause-deployment", "deployment_id": str(deployment.id)}],
    ).create()
    Automation(
        name="resume on all-clear",
        trigger=EventTrigger(expect=["ops.clear"]),
        actions=[{"type": "resume-deployment", "source": "inferred"}],
    ).create()
    emit_event("ops.alarm", resource={"headwater.resource.id": "ops.pager"})
    _wait(lambda: read_deployment("greet/d").paused)
    emit_event(
        "ops.clear",
        resource={"headwater.resource.id": "ops.pager"},
        related=[
            {
                "headwater.resource.id": f"headwater.deployment.{deployment.id}",
                "headwater.resource.role": "deployment",
            }
        ],
    )
    _wait(lambda: not read_deployment("greet/d").paused)


def test_an_event_runs_a_deployment_with_templated_parameters(home: Path) -> None:
    deployment = greet.to_deployment("d").apply()
    Automation(
        name="greet arrivals",
        trigger=EventTrigger(expect=["file.arrived"]),
        actions=[
            {
                "type": "run-deployment",
                "deployment_id": str(deployment.id),
                "parameters": {"name": "{{ event.payload.who }}", "times": "{{ event.payload.n }}"},
            }
        ],
    ).create()
    emit_event(
        "file.arrived", resource={"headwater.resource.id": "bucket.a"}, payload={"who": "x", "n": 4}
    )

    def made() -> list[tuple]:
        connection = sqlite3.connect(home / "headwater.db")
        try:
            return connection.execute(
                "SELECT parameters, idempotency_key FROM flow_runs WHERE deployment_id = ?",
                (str(deployment.id),),
            ).fetchall()
        finally:
            connection.close()

    rows = _wait(made)
    assert rows[0][0] == '{"name":"x","times":4}'
    assert rows[0][1].startswith("automation ")


def test_triggers_become_automations_owned_by_the_deployment(home: Path) -> None:
    deployment = greet.to_deployment(
        "d", triggers=[{"expect": ["file.arrived"], "match": {"headwater.resource.id": "bucket.*"}}]
    )
    assert isinstance(deployment, RunnerDeployment)
    stored = deployment.apply()
    again = greet.to_deployment("d", triggers=[{"expect": ["file.changed"]}]).apply()
    assert again.id == stored.id
    import anyio

    owned = [
        a
        for a in anyio.run(read_automations)
        if a.owner_resource == f"headwater.deployment.{stored.id}"
    ]
    assert len(owned) == 1  # registering again replaced the first one
    assert owned[0].trigger.expect == ["file.changed"]
    assert owned[0].actions[0].type == "run-deployment"
    with pytest.raises(DeploymentValidationError, match="triggers of d"):
        greet.to_deployment("d", triggers=[{"expect": ["x"], "within": -1}])


def test_a_suspended_run_waits_and_a_resumed_one_is_due_again(home: Path) -> None:
    deployment = sleepy.to_deployment("d").apply()
    run, _ = runs.create_run(deployment)
    (_claim,) = runs.claim_due({str(deployment.id): deployment}, datetime.datetime.now(UTC), "l", 1)
    runs.suspend_run(run.id, "waiting for approval", 60)
    suspended = runs.read_run(run.id)
    assert suspended is not None and suspended.state_name == "Suspended"
    assert [r.id for r in runs.runs_to_stop("l", [run.id])] == [
        run.id
    ]  # its launcher stops its process
    runs.resume_run(run.id)
    resumed = runs.read_run(run.id)
    assert resumed is not None and (resumed.state_type.value, resumed.state_name) == (
        "SCHEDULED",
        "Resuming",
    )
    again = runs.claim_due({str(deployment.id): deployment}, datetime.datetime.now(UTC), "m", 1)
    assert [c.adoption.flow_run_id for c in again] == [run.id]
    with pytest.raises(DeploymentValidationError, match="only a suspended run"):
        runs.resume_run(run.id)


def test_only_runs_of_deployments_in_progress_can_be_suspended(home: Path) -> None:
    deployment = sleepy.to_deployment("d").apply()
    run, _ = runs.create_run(deployment)
    with pytest.raises(DeploymentValidationError, match="only a Pending or Running run"):
        runs.suspend_run(run.id, "no", 60)


def test_a_prefect_deployment_trigger_names_its_automation_and_templates_parameters(
    home: Path,
) -> None:
    from headwater.events import DeploymentEventTrigger

    stored = greet.to_deployment(
        "d",
        triggers=[
            DeploymentEventTrigger(
                name="greet arrivals",
                expect={"file.arrived"},
                parameters={"name": "{{ event.payload.who }}"},
            )
        ],
    ).apply()
    import anyio

    (owned,) = [
        a
        for a in anyio.run(read_automations)
        if a.owner_resource == f"headwater.deployment.{stored.id}"
    ]
    assert owned.name == "greet arrivals"
    assert owned.actions[0].parameters == {"name": "{{ event.payload.who }}"}
    emit_event("file.arrived", resource={"prefect.resource.id": "bucket.a"}, payload={"who": "z"})

    def made() -> list[tuple]:
        connection = sqlite3.connect(home / "headwater.db")
        try:
            return connection.execute(
                "SELECT parameters FROM flow_runs WHERE deployment_id = ?", (str(stored.id),)
            ).fetchall()
        finally:
            connection.close()

    assert _wait(made)[0][0] == '{"name":"z"}'
