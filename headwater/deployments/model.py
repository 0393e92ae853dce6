"""What a deployment is: a named, stored way to run a flow. Pure: no I/O, no clock.

A deployment is known as ``"<flow name>/<deployment name>"`` (Prefect's handle); the
name is unique per flow. Everything here is checked when a definition is made or decoded,
so a bad one fails with :class:`~headwater.exceptions.DeploymentValidationError` naming the
field before anything is stored. The same struct is the database's JSON and the wire's.
"""

from __future__ import annotations

import datetime
import enum
import uuid
from typing import Any, Literal

import msgspec

from headwater.deployments.schedules import DeploymentSchedule, schedule_key
from headwater.exceptions import DeploymentValidationError

__all__ = [
    "CatchUp",
    "CollisionStrategy",
    "ConcurrencyLimitConfig",
    "DeploymentDefinition",
    "FORBIDDEN_NAME_CHARACTERS",
    "catchup_fields",
    "check_name",
    "keep_schedule_switches",
    "merge_parameters",
    "parse_deployment_name",
]

FORBIDDEN_NAME_CHARACTERS = frozenset("/%&><")


class CollisionStrategy(str, enum.Enum):
    """What a run that finds the deployment's concurrency limit full does."""

    ENQUEUE = "ENQUEUE"
    """Wait, as AwaitingConcurrencySlot, and start when a slot frees (the default)."""
    CANCEL_NEW = "CANCEL_NEW"
    """End Cancelled at once."""


class ConcurrencyLimitConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A deployment's limit on runs in Pending/Running/Cancelling, across every launcher."""

    limit: int
    collision_strategy: CollisionStrategy = CollisionStrategy.ENQUEUE

    def __post_init__(self) -> None:
        if not isinstance(self.limit, int) or self.limit < 1:
            raise DeploymentValidationError(
                f"concurrency_limit: expected a whole number of runs >= 1, got {self.limit!r}"
            )


CatchUp = str | datetime.timedelta
"""What happens to auto-scheduled runs that are already late when a launcher can take them
(after downtime, say): ``"all"`` runs each, oldest first (Prefect's behaviour); ``"latest"``
runs only the most recent of a deployment's late runs and skips the others; a duration
skips runs later than that. Skipped runs end Cancelled, saying why."""


def check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise DeploymentValidationError(f"{what}: expected a non-empty name, got {name!r}")
    bad = sorted(set(name) & FORBIDDEN_NAME_CHARACTERS)
    if bad:
        raise DeploymentValidationError(
            f"{what} {name!r} contains {''.join(bad)!r}; names may not contain / % & > <"
        )
    return name


def parse_deployment_name(text: str) -> tuple[str, str]:
    """``"flow/deployment"`` → ``("flow", "deployment")``, or a clear error."""
    flow_name, slash, name = text.partition("/")
    if not slash or not flow_name or not name or "/" in name:
        raise DeploymentValidationError(
            f"deployment {text!r}: expected '<flow name>/<deployment name>' or a deployment id"
        )
    return flow_name, name


class DeploymentDefinition(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A deployment as stored.

    Attributes:
        id: stable across registrations of the same ``flow_name/name``.
        name: the deployment's name (unique per flow).
        flow_name: the flow it runs.
        entrypoint: ``path/to/file.py:function`` or ``package.module:function`` /
            ``package.module.function``: how a launcher loads the flow in a new process.
        path: the working directory runs start in (the entrypoint's path is relative to it).
        parameters: defaults merged under each run's parameters (and each schedule's).
        parameter_schema: the flow's parameters as JSON schema; runs are checked against it
            when ``enforce_parameter_schema`` is on.
        tags: given to every run (with the run's own).
        description, version: shown by the CLI; the description defaults to the docstring.
        schedules: when runs are due; each may have its own parameters.
        paused: a paused deployment makes no scheduled runs (manual runs still work).
        concurrency_limit: runs of this deployment in progress at once, across launchers.
        catchup: see :data:`CatchUp`: ``"skip"`` (with ``catchup_after``) is how a
            duration is stored.
        triggers: automations (as their JSON definitions) that run this deployment.
    """

    id: uuid.UUID
    name: str
    flow_name: str
    entrypoint: str
    path: str | None = None
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    parameter_schema: dict[str, Any] = msgspec.field(default_factory=dict)
    enforce_parameter_schema: bool = True
    tags: list[str] = msgspec.field(default_factory=list)
    description: str | None = None
    version: str | None = None
    schedules: list[DeploymentSchedule] = msgspec.field(default_factory=list)
    paused: bool = False
    concurrency_limit: ConcurrencyLimitConfig | None = None
    catchup: Literal["all", "latest", "skip"] = "all"
    catchup_after: datetime.timedelta | None = None
    triggers: list[dict[str, Any]] = msgspec.field(default_factory=list)
    created: datetime.datetime | None = None
    updated: datetime.datetime | None = None

    def __post_init__(self) -> None:
        check_name(self.name, "deployment name")
        check_name(self.flow_name, "flow name")
        if not isinstance(self.entrypoint, str) or not self.entrypoint.strip():
            raise DeploymentValidationError(
                f"entrypoint: expected 'path/to/file.py:function' or 'package.module:function',"
                f" got {self.entrypoint!r}"
            )
        if self.catchup == "skip" and (
            self.catchup_after is None or self.catchup_after <= datetime.timedelta(0)
        ):
            raise DeploymentValidationError(
                f"catchup: a positive duration is needed to skip late runs, got"
                f" {self.catchup_after!r}"
            )
        keys = [schedule_key(schedule) for schedule in self.schedules]
        if len(set(keys)) != len(keys):
            raise DeploymentValidationError(
                f"schedules of {self.full_name}: two schedules are the same (same definition"
                " and parameters, or the same slug); give one a different slug"
            )

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"

    def schedule_by_key(self) -> dict[str, DeploymentSchedule]:
        return {schedule_key(schedule): schedule for schedule in self.schedules}


def catchup_fields(value: CatchUp) -> tuple[str, datetime.timedelta | None]:
    """``catchup=`` as given (``"all"``, ``"latest"`` or a duration) → the stored fields."""
    if isinstance(value, datetime.timedelta):
        if value <= datetime.timedelta(0):
            raise DeploymentValidationError(f"catchup: expected a positive duration, got {value}")
        return "skip", value
    if value in ("all", "latest"):
        return str(value), None
    raise DeploymentValidationError(
        f"catchup: expected 'all', 'latest' or a timedelta (skip runs later than it), got {value!r}"
    )


def merge_parameters(*layers: dict[str, Any] | None) -> dict[str, Any]:
    """Later layers win: deployment defaults, then a schedule's, then a run's own."""
    merged: dict[str, Any] = {}
    for layer in layers:
        if layer:
            merged.update(layer)
    return merged


def keep_schedule_switches(
    new: list[DeploymentSchedule], stored: list[DeploymentSchedule]
) -> list[DeploymentSchedule]:
    """The new schedules, each left as ``active=None`` taking the stored schedule's switch.

    So registering a deployment again never re-activates a schedule someone paused
    (Prefect #19302); an explicit ``active=True`` does.
    """
    before = {schedule_key(schedule): schedule.active for schedule in stored}
    kept: list[DeploymentSchedule] = []
    for schedule in new:
        active = schedule.active
        if active is None:
            active = before.get(schedule_key(schedule)) is not False
        kept.append(msgspec.structs.replace(schedule, active=active))
    return kept
