"""A flow run made before it started, taken over by the process that runs it.

A deployment's run exists (Scheduled, then Pending once a launcher claims it) before any
process runs its flow. The launched process adopts it: the engine keeps its id, name, tags
and parameters and continues from the claimed Pending state instead of making a new run,
so its history is one run from Scheduled to its final state.
"""

from __future__ import annotations

import contextvars
import datetime
import uuid
from typing import Any

import msgspec

__all__ = ["Adoption", "DeploymentFacts", "deployment_context"]


class DeploymentFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What ``headwater.runtime.deployment`` tells a run of a deployment."""

    id: uuid.UUID
    name: str
    flow_run_id: uuid.UUID
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    version: str | None = None


class Adoption(msgspec.Struct, frozen=True, kw_only=True):
    """The stored facts of the run to continue.

    Attributes:
        flow_run_id, name, tags, parameters: the run as it was created.
        state_id, state_timestamp: its Pending state (the next transition follows it).
        run_count: attempts already made (0 for a fresh run).
        scheduled_start_time: when it was due.
        parent_flow_run_id: the flow run that asked for it (``run_deployment`` in a flow).
        deployment: the deployment it is a run of.
    """

    flow_run_id: uuid.UUID
    name: str
    tags: list[str] = msgspec.field(default_factory=list)
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    state_id: uuid.UUID
    state_timestamp: datetime.datetime
    run_count: int = 0
    scheduled_start_time: datetime.datetime | None = None
    parent_flow_run_id: uuid.UUID | None = None
    deployment: DeploymentFacts | None = None


deployment_context: contextvars.ContextVar[DeploymentFacts | None] = contextvars.ContextVar(
    "headwater_deployment", default=None
)
"""The deployment whose run this context is in (set by the process that adopted it)."""
