"""``flow.to_deployment(...)``: a deployment of a flow object, ready to register and serve.

:class:`RunnerDeployment` is Prefect's name: the definition plus the flow it came from.
:meth:`RunnerDeployment.apply` stores it (``headwater.deployments.store``) and turns its
``triggers`` into automations owned by the deployment (``headwater.deployment.<id>``),
each running it (``run-deployment``, selected); registering again replaces them.
"""

from __future__ import annotations

import datetime
import functools
import inspect
import uuid
from collections.abc import Iterable
from typing import Any

import msgspec

from headwater.automations.automation import Automation, run_sync
from headwater.automations.deployment_triggers import split_options
from headwater.automations.model import AutomationDefinition, parse_automation
from headwater.automations.store import delete_automation, read_automations
from headwater.deployments.backend import LocalBackend, get_backend
from headwater.deployments.model import (
    CatchUp,
    CollisionStrategy,
    ConcurrencyLimitConfig,
    DeploymentDefinition,
    catchup_fields,
    check_name,
)
from headwater.deployments.runs import validate_parameters
from headwater.deployments.schedules import (
    Cron,
    DeploymentSchedule,
    Interval,
    RRule,
    as_schedule,
)
from headwater.engine.flows import Flow
from headwater.exceptions import DeploymentValidationError
from headwater.ids import new_uuid
from headwater.runner.entrypoint import entrypoint_of

__all__ = ["RunnerDeployment", "build_schedules", "to_deployment"]


def _many(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, bytes, int, float, datetime.timedelta)):
        return [value]
    return list(value)


def build_schedules(
    *,
    cron: str | Iterable[str] | None = None,
    interval: Any = None,
    rrule: str | Iterable[str] | None = None,
    schedule: Any = None,
    schedules: Iterable[Any] | None = None,
    timezone: str | None = None,
    anchor_date: datetime.datetime | None = None,
) -> list[DeploymentSchedule]:
    """Prefect's schedule arguments as one list: each scalar is one schedule."""
    built: list[DeploymentSchedule] = []
    built += [Cron(expression, timezone=timezone) for expression in _many(cron)]
    built += [Interval(every, anchor_date, timezone) for every in _many(interval)]
    built += [RRule(rule, timezone=timezone) for rule in _many(rrule)]
    if schedule is not None:
        built.append(as_schedule(schedule))
    built += [as_schedule(item) for item in schedules or ()]
    return built


class RunnerDeployment:
    """A deployment of an in-memory flow: its definition, its flow, its automations."""

    def __init__(self, definition: DeploymentDefinition, flow: Flow[..., Any]) -> None:
        self.definition = definition
        self.flow = flow

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def full_name(self) -> str:
        return self.definition.full_name

    def apply(self, *, paused: bool | None = None) -> DeploymentDefinition:
        """Store it (create or update) and its triggers; returns the stored definition."""
        backend = get_backend()
        if self.definition.triggers and not isinstance(backend, LocalBackend):
            raise DeploymentValidationError(
                f"{self.full_name}: deployment triggers are automations, which this version"
                " keeps in the local database only; register it without HEADWATER_API_URL,"
                " or without triggers"
            )
        stored = backend.apply(self.definition, paused)
        self.definition = stored
        if isinstance(backend, LocalBackend):
            _replace_triggers(stored)
        return stored

    def __repr__(self) -> str:
        return (
            f"RunnerDeployment(name={self.full_name!r}, entrypoint={self.definition.entrypoint!r})"
        )


def _concurrency(value: Any) -> ConcurrencyLimitConfig | None:
    if value is None:
        return None
    if isinstance(value, ConcurrencyLimitConfig):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return ConcurrencyLimitConfig(value)
    if isinstance(value, dict):
        strategy = value.get("collision_strategy", "ENQUEUE")
        try:
            return ConcurrencyLimitConfig(
                value["limit"], CollisionStrategy(str(getattr(strategy, "value", strategy)))
            )
        except (KeyError, ValueError):
            pass
    raise DeploymentValidationError(
        "concurrency_limit: expected a number of runs, or"
        f" ConcurrencyLimitConfig(limit, collision_strategy), got {value!r}"
    )


def to_deployment(
    flow: Flow[..., Any],
    name: str | None = None,
    *,
    interval: Any = None,
    cron: str | Iterable[str] | None = None,
    rrule: str | Iterable[str] | None = None,
    paused: bool | None = None,
    schedule: Any = None,
    schedules: Iterable[Any] | None = None,
    concurrency_limit: Any = None,
    global_limit: Any = None,
    parameters: dict[str, Any] | None = None,
    triggers: Iterable[Any] | None = None,
    description: str | None = None,
    tags: Iterable[str] | None = None,
    version: str | None = None,
    enforce_parameter_schema: bool = True,
    catchup: CatchUp = "all",
    timezone: str | None = None,
    entrypoint: str | None = None,
) -> RunnerDeployment:
    """A deployment of ``flow`` (Prefect's ``Flow.to_deployment``); nothing is stored yet.

    Raises:
        ScheduleValidationError: a schedule argument is invalid (names the value).
        DeploymentValidationError: a bad name, limit, trigger or default parameter.
    """
    name = _deployment_name(name, flow)
    built = build_schedules(
        cron=cron,
        interval=interval,
        rrule=rrule,
        schedule=schedule,
        schedules=schedules,
        timezone=timezone,
    )
    if entrypoint is None:
        entrypoint, path = entrypoint_of(flow)
    else:
        path = None
    catchup_mode, catchup_after = catchup_fields(catchup)
    defaults = dict(parameters or {})
    unknown = sorted(set(defaults) - set(flow.parameters.signature.parameters))
    accepts_any = any(
        p.kind is inspect.Parameter.VAR_KEYWORD
        for p in flow.parameters.signature.parameters.values()
    )
    if unknown and not accepts_any:
        raise DeploymentValidationError(
            f"parameters: flow {flow.name!r} has no parameter(s) {unknown}; it takes"
            f" {sorted(flow.parameters.signature.parameters)}"
        )
    definition = DeploymentDefinition(
        id=new_uuid(),
        name=name,
        flow_name=flow.name,
        entrypoint=entrypoint,
        path=path,
        parameters=msgspec.to_builtins(defaults),
        parameter_schema=flow.parameters.json_schema(),
        enforce_parameter_schema=enforce_parameter_schema,
        tags=sorted(set(tags or ())),
        description=description if description is not None else flow.description,
        version=version if version is not None else flow.version,
        schedules=built,
        paused=bool(paused),
        concurrency_limit=_concurrency(
            concurrency_limit if concurrency_limit is not None else global_limit
        ),
        catchup=catchup_mode,  # type: ignore[arg-type]  # checked by catchup_fields
        catchup_after=catchup_after,
        triggers=[_trigger_json(trigger, name) for trigger in triggers or ()],
    )
    if _required_given(definition):
        validate_parameters(definition, definition.parameters)  # bad defaults fail now
    return RunnerDeployment(definition, flow)


def _required_given(definition: DeploymentDefinition) -> bool:
    required = definition.parameter_schema.get("required", [])
    return all(name in definition.parameters for name in required)


def _deployment_name(name: str | None, flow: Flow[..., Any]) -> str:
    if name is None:
        return check_name(flow.name, "deployment name")
    if name.endswith(".py"):
        from pathlib import Path

        if Path(name).is_file():
            return Path(name).stem  # Prefect: a file path names the deployment by its stem
    return check_name(name, "deployment name")


def _trigger_json(trigger: Any, deployment_name: str) -> dict[str, Any]:
    """A trigger (with its automation's options, if a deployment trigger) as JSON, checked."""
    data = dict(trigger) if isinstance(trigger, dict) else msgspec.to_builtins(trigger)
    data.setdefault("type", "event")
    own, options = split_options(data)
    try:
        parse_automation(
            {
                "name": f"check {deployment_name}",
                "trigger": own,
                "actions": [_run_action(uuid.uuid4(), options.get("parameters"))],
            }
        )
    except ValueError as exc:
        raise DeploymentValidationError(f"triggers of {deployment_name}: {exc}") from None
    return data


def _run_action(deployment_id: uuid.UUID, parameters: Any) -> dict[str, Any]:
    action: dict[str, Any] = {
        "type": "run-deployment",
        "source": "selected",
        "deployment_id": str(deployment_id),
    }
    if parameters is not None:
        action["parameters"] = parameters
    return action


def _replace_triggers(deployment: DeploymentDefinition) -> None:
    owner = f"headwater.deployment.{deployment.id}"
    existing = [a for a in run_sync(read_automations) if a.owner_resource == owner]
    for automation in existing:
        if automation.id is not None:
            run_sync(functools.partial(delete_automation, automation.id))
    for index, trigger in enumerate(deployment.triggers):
        own, options = split_options(trigger)
        definition: AutomationDefinition = parse_automation(
            {
                "name": options.get("name") or f"{deployment.full_name}__automation_{index + 1}",
                "description": options.get("description")
                or f"Runs deployment {deployment.full_name}",
                "enabled": options.get("enabled", True),
                "trigger": own,
                "actions": [_run_action(deployment.id, options.get("parameters"))],
                "owner_resource": owner,
            }
        )
        Automation.from_definition(definition).create()
