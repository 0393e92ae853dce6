"""Builders of engine-shaped state events for the storage tests (also used by subprocesses)."""

from __future__ import annotations

import datetime
import os
import socket
import uuid
from collections.abc import Sequence
from typing import Any

from headwater.events.schema import Event
from headwater.ids import new_uuid

T0 = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)
FLOW_STATES = (("Pending", "PENDING"), ("Running", "RUNNING"), ("Completed", "COMPLETED"))


def state_event(
    kind: str,
    run_id: uuid.UUID,
    name: str,
    type_: str,
    *,
    occurred: datetime.datetime,
    previous: Event | None = None,
    run_name: str = "brave-otter",
    flow_name: str = "etl",
    tags: Sequence[str] = (),
    flow_run_id: uuid.UUID | None = None,
    parent_flow_run_id: uuid.UUID | None = None,
    task_key: str = "extract-1a2b",
    message: str = "",
    run_count: int = 1,
    pid: int | None = None,
    hostname: str | None = None,
    parameters: dict[str, Any] | None = None,
) -> Event:
    """A ``headwater.<kind>.<name>`` event shaped as the engine publishes it."""
    state_id = new_uuid()
    state = {
        "id": str(state_id),
        "type": type_,
        "name": name,
        "message": message,
        "timestamp": occurred.isoformat(),
    }
    initial = None if previous is None else previous.payload["validated_state"]
    resource = {
        "headwater.resource.id": f"headwater.{kind}.{run_id}",
        "headwater.resource.name": run_name,
        "headwater.run-count": str(run_count),
        "headwater.state-type": type_,
        "headwater.state-name": name,
        "headwater.state-message": message,
        "headwater.state-timestamp": occurred.isoformat(),
    }
    related: list[dict[str, str]] = []
    if kind == "task-run":
        resource["headwater.orchestration"] = "client"
        if flow_run_id is not None:
            related.append(
                {
                    "headwater.resource.id": f"headwater.flow-run.{flow_run_id}",
                    "headwater.resource.role": "flow-run",
                    "headwater.resource.name": "parent-run",
                }
            )
    related.append(
        {
            "headwater.resource.id": f"headwater.flow.{flow_name}",
            "headwater.resource.role": "flow",
            "headwater.resource.name": flow_name,
        }
    )
    if kind == "task-run":
        related.append(
            {
                "headwater.resource.id": f"headwater.task.{task_key}",
                "headwater.resource.role": "task",
            }
        )
    if parent_flow_run_id is not None:
        related.append(
            {
                "headwater.resource.id": f"headwater.flow-run.{parent_flow_run_id}",
                "headwater.resource.role": "parent-flow-run",
            }
        )
    for tag in sorted(tags):
        related.append(
            {"headwater.resource.id": f"headwater.tag.{tag}", "headwater.resource.role": "tag"}
        )
    payload: dict[str, Any] = {
        "intended": {"from": None if initial is None else initial["type"], "to": type_},
        "initial_state": initial,
        "validated_state": state,
    }
    if kind == "flow-run":
        payload["flow_run"] = {
            "id": str(run_id),
            "name": run_name,
            "flow_name": flow_name,
            "flow_version": "1.0",
            "parent_flow_run_id": None if parent_flow_run_id is None else str(parent_flow_run_id),
            "parameters": parameters or {},
            "tags": sorted(tags),
            "run_count": run_count,
            "pid": os.getpid() if pid is None else pid,
            "hostname": socket.gethostname() if hostname is None else hostname,
        }
    else:
        payload["task_run"] = {
            "id": str(run_id),
            "name": run_name,
            "task_key": task_key,
            "task_name": task_key.rsplit("-", 1)[0],
            "flow_run_id": None if flow_run_id is None else str(flow_run_id),
            "tags": sorted(tags),
            "run_count": run_count,
        }
    return Event(
        occurred=occurred,
        event=f"headwater.{kind}.{name}",
        resource=resource,  # type: ignore[arg-type]
        related=related,  # type: ignore[arg-type]
        payload=payload,
        id=state_id,
        follows=None if previous is None else previous.id,
    )


def run_events(
    kind: str,
    run_id: uuid.UUID,
    states: Sequence[tuple[str, str]] = FLOW_STATES,
    *,
    start: datetime.datetime = T0,
    step: datetime.timedelta = datetime.timedelta(seconds=1),
    **fields: Any,
) -> list[Event]:
    """The events of one run going through ``states``, ``step`` apart, linked by ``follows``."""
    events: list[Event] = []
    previous: Event | None = None
    for index, (name, type_) in enumerate(states):
        run_count = 0 if type_ in ("PENDING", "SCHEDULED") and index == 0 else 1
        event = state_event(
            kind,
            run_id,
            name,
            type_,
            occurred=start + step * index,
            previous=previous,
            run_count=run_count,
            **fields,
        )
        events.append(event)
        previous = event
    return events


def plain_event(name: str, resource_id: str, occurred: datetime.datetime, **kwargs: Any) -> Event:
    """A user event (not a state change)."""
    return Event(
        occurred=occurred,
        event=name,
        resource={"headwater.resource.id": resource_id, **kwargs.pop("labels", {})},  # type: ignore[arg-type]
        **kwargs,
    )
