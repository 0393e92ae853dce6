"""Flow runs, task runs, and the one transition function both go through.

``set_state`` is the whole transition path (propose -> validate -> record -> publish) for
sync and async runs alike. It publishes a compact :class:`TransitionRecord` rather than a
full Event: the record holds the run's identity and two small state snapshots (never the
result data, so a buffered record cannot keep a large result alive) and materialises
the Prefect-shaped Event only when a consumer asks for it, off the per-task path.
"""

from __future__ import annotations

import datetime
import os
import socket
import uuid
from typing import Any

import msgspec

from headwater._ids import new_uuid
from headwater.engine.states import TERMINAL_STATES, State, StateType
from headwater.events.bus import get_bus
from headwater.events.schema import (
    RESOURCE_ID,
    RESOURCE_NAME,
    RESOURCE_ROLE,
    Event,
    RelatedResource,
    Resource,
)

__all__ = ["FlowRun", "RunIdentity", "TaskRun", "TransitionRecord", "set_state"]

_PID = os.getpid()
_HOSTNAME = socket.gethostname()
MESSAGE_LIMIT = 100_000


class RunIdentity:
    """The unchanging facts about a run that every one of its events repeats."""

    __slots__ = (
        "_related",
        "_payload",
        "_last_state",
        "flow_name",
        "flow_run_id",
        "flow_run_name",
        "flow_version",
        "id",
        "kind",
        "name",
        "parameters",
        "parent_flow_run_id",
        "_resource_id",
        "tags",
        "task_key",
        "task_name",
    )

    def __init__(
        self,
        kind: str,
        id: uuid.UUID,
        name: str,
        flow_name: str | None,
        *,
        flow_run_id: uuid.UUID | None = None,
        flow_run_name: str | None = None,
        parent_flow_run_id: uuid.UUID | None = None,
        task_key: str | None = None,
        task_name: str | None = None,
        tags: tuple[str, ...] = (),
        flow_version: str | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        self.kind = kind
        self.id = id
        self._resource_id: str | None = None
        self.name = name
        self.flow_name = flow_name
        self.flow_run_id = flow_run_id
        self.flow_run_name = flow_run_name
        self.parent_flow_run_id = parent_flow_run_id
        self.task_key = task_key
        self.task_name = task_name
        self.tags = tags
        self.flow_version = flow_version
        self.parameters = parameters
        self._related: list[RelatedResource] | None = None
        # caches used when events are materialised (consumer side, one run at a time)
        self._payload: tuple[int, dict[str, Any]] | None = None
        self._last_state: tuple[uuid.UUID, dict[str, Any]] | None = None

    @property
    def resource_id(self) -> str:
        # built on first use: str(uuid) is not free, and most runs only need it off-path
        resource_id = self._resource_id
        if resource_id is None:
            resource_id = self._resource_id = f"headwater.{self.kind}.{self.id}"
        return resource_id

    def related(self) -> list[RelatedResource]:
        """The run's related resources; one list shared by all its events (read-only)."""
        if self._related is None:
            related: list[dict[str, str]] = []
            if self.kind == "task-run" and self.flow_run_id is not None:
                related.append(
                    {
                        RESOURCE_ID: f"headwater.flow-run.{self.flow_run_id}",
                        RESOURCE_ROLE: "flow-run",
                        RESOURCE_NAME: self.flow_run_name or "",
                    }
                )
            if self.flow_name is not None:
                related.append(
                    {
                        RESOURCE_ID: f"headwater.flow.{self.flow_name}",
                        RESOURCE_ROLE: "flow",
                        RESOURCE_NAME: self.flow_name,
                    }
                )
            if self.kind == "task-run":
                related.append(
                    {
                        RESOURCE_ID: f"headwater.task.{self.task_key}",
                        RESOURCE_ROLE: "task",
                        RESOURCE_NAME: self.task_name or "",
                    }
                )
            if self.parent_flow_run_id is not None:
                related.append(
                    {
                        RESOURCE_ID: f"headwater.flow-run.{self.parent_flow_run_id}",
                        RESOURCE_ROLE: "parent-flow-run",
                    }
                )
            for tag in sorted(self.tags):
                related.append({RESOURCE_ID: f"headwater.tag.{tag}", RESOURCE_ROLE: "tag"})
            self._related = [RelatedResource(item) for item in related]
        return self._related

    def run_payload(self, run_count: int) -> dict[str, Any]:
        """The ``flow_run``/``task_run`` part of the payload, built once per run count."""
        cached = self._payload
        if cached is not None and cached[0] == run_count:
            return cached[1]
        payload = self._build_run_payload(run_count)
        self._payload = (run_count, payload)
        return payload

    def state_json(self, snapshot: StateSnapshot) -> dict[str, Any]:
        """A state as the payload shows it; the previous event's copy is reused."""
        cached = self._last_state
        if cached is not None and cached[0] == snapshot[0]:
            return cached[1]
        return _snapshot_json(snapshot)

    def _build_run_payload(self, run_count: int) -> dict[str, Any]:
        if self.kind == "flow-run":
            return {
                "flow_run": {
                    "id": str(self.id),
                    "name": self.name,
                    "flow_name": self.flow_name,
                    "flow_version": self.flow_version,
                    "parent_flow_run_id": _str_or_none(self.parent_flow_run_id),
                    "parameters": jsonable(self.parameters or {}),
                    "tags": sorted(self.tags),
                    "run_count": run_count,
                    "pid": _PID,
                    "hostname": _HOSTNAME,
                }
            }
        return {
            "task_run": {
                "id": str(self.id),
                "name": self.name,
                "task_key": self.task_key,
                "task_name": self.task_name,
                "flow_run_id": _str_or_none(self.flow_run_id),
                "tags": sorted(self.tags),
                "run_count": run_count,
            }
        }


def _str_or_none(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def _jsonable_fallback(value: Any) -> Any:
    text = repr(value)
    return text if len(text) <= 1000 else text[:997] + "..."


def jsonable(value: Any) -> Any:
    """A JSON-safe copy of ``value``; what JSON cannot hold becomes its (short) repr."""
    try:
        return msgspec.to_builtins(value, enc_hook=_jsonable_fallback, str_keys=True)
    except Exception:
        return _jsonable_fallback(value)


# (id, type, name, message, timestamp) of a state: enough for an event, no result data.
StateSnapshot = tuple[uuid.UUID, StateType, str, "str | None", datetime.datetime]


class TransitionRecord:
    """A state change as the bus carries it; ``to_event()`` gives the Prefect-shaped Event."""

    __slots__ = ("_event", "current", "identity", "previous", "run_count")

    def __init__(
        self,
        identity: RunIdentity,
        run_count: int,
        previous: StateSnapshot | None,
        current: StateSnapshot,
    ) -> None:
        self.identity = identity
        self.run_count = run_count
        self.previous = previous
        self.current = current
        self._event: Event | None = None

    @property
    def resource_id(self) -> str:
        return self.identity.resource_id

    @property
    def state_id(self) -> uuid.UUID:
        return self.current[0]

    @property
    def state_type(self) -> StateType:
        return self.current[1]

    @property
    def event_name(self) -> str:
        return f"headwater.{self.identity.kind}.{self.current[2]}"

    def to_event(self) -> Event:
        if self._event is None:
            self._event = self._materialise()
        return self._event

    def _materialise(self) -> Event:
        identity = self.identity
        current = self.current
        state_id, _, name, _, timestamp = current
        validated = _snapshot_json(current)
        previous = self.previous
        initial = None if previous is None else identity.state_json(previous)
        identity._last_state = (state_id, validated)
        resource = Resource(
            {
                RESOURCE_ID: identity.resource_id,
                RESOURCE_NAME: identity.name,
                "headwater.run-count": str(self.run_count),
                "headwater.state-message": validated["message"],
                "headwater.state-name": name,
                "headwater.state-timestamp": validated["timestamp"],
                "headwater.state-type": validated["type"],
            }
        )
        if identity.kind == "task-run":
            resource["headwater.orchestration"] = "client"
        payload: dict[str, Any] = {
            "intended": {
                "from": None if previous is None else previous[1].value,
                "to": validated["type"],
            },
            "initial_state": initial,
            "validated_state": validated,
        }
        payload.update(identity.run_payload(self.run_count))
        return Event(
            occurred=timestamp,
            event=f"headwater.{identity.kind}.{name}",
            resource=resource,
            related=identity.related(),
            payload=payload,
            id=state_id,
            follows=None if previous is None else previous[0],
        )


def _snapshot_json(snapshot: StateSnapshot) -> dict[str, Any]:
    state_id, state_type, name, message, timestamp = snapshot
    return {
        "id": str(state_id),
        "type": state_type.value,
        "name": name,
        "message": (message or "")[:MESSAGE_LIMIT],
        "timestamp": timestamp.isoformat(),
    }


class FlowRun:
    """A flow run as hooks and ``headwater.runtime`` see it."""

    __slots__ = (
        "end_time",
        "flow_name",
        "flow_version",
        "id",
        "identity",
        "name",
        "parameters",
        "parent_flow_run_id",
        "root_flow_run_id",
        "run_count",
        "start_time",
        "state",
        "tags",
    )

    def __init__(
        self,
        flow_name: str,
        name: str,
        parameters: dict[str, Any],
        tags: tuple[str, ...],
        parent: FlowRun | None,
        flow_version: str | None,
    ) -> None:
        self.id = new_uuid()
        self.name = name
        self.flow_name = flow_name
        self.flow_version = flow_version
        self.parameters = parameters
        self.tags = tags
        self.run_count = 0
        self.state: State[Any] | None = None
        self.parent_flow_run_id = parent.id if parent is not None else None
        self.root_flow_run_id: uuid.UUID = (
            parent.root_flow_run_id if parent is not None else self.id
        )
        self.start_time: datetime.datetime | None = None
        self.end_time: datetime.datetime | None = None
        self.identity = self._make_identity()

    def rename(self, name: str) -> None:
        self.name = name
        self.identity = self._make_identity()

    def _make_identity(self) -> RunIdentity:
        return RunIdentity(
            "flow-run",
            self.id,
            self.name,
            self.flow_name,
            parent_flow_run_id=self.parent_flow_run_id,
            tags=self.tags,
            flow_version=self.flow_version,
            parameters=self.parameters,
        )

    def __repr__(self) -> str:
        state = self.state.name if self.state else None
        return f"FlowRun(id={self.id}, name={self.name!r}, flow={self.flow_name!r}, state={state})"


class TaskRun:
    """A task run as hooks and ``headwater.runtime`` see it."""

    __slots__ = (
        "end_time",
        "flow_run_id",
        "id",
        "identity",
        "name",
        "parameters",
        "run_count",
        "start_time",
        "state",
        "tags",
        "task_key",
        "task_name",
    )

    def __init__(
        self,
        task_key: str,
        task_name: str,
        name: str,
        tags: tuple[str, ...],
        flow_run: FlowRun | None,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        self.id = uuid_id = new_uuid()
        self.name = name
        self.task_key = task_key
        self.task_name = task_name
        self.flow_run_id = flow_run.id if flow_run is not None else None
        self.tags = tags
        self.run_count = 0
        self.state: State[Any] | None = None
        self.start_time: datetime.datetime | None = None
        self.end_time: datetime.datetime | None = None
        self.parameters = parameters
        self.identity = RunIdentity(
            "task-run",
            uuid_id,
            name,
            flow_run.flow_name if flow_run is not None else None,
            flow_run_id=self.flow_run_id,
            flow_run_name=flow_run.name if flow_run is not None else None,
            task_key=task_key,
            task_name=task_name,
            tags=tags,
        )

    def __repr__(self) -> str:
        state = self.state.name if self.state else None
        return f"TaskRun(id={self.id}, name={self.name!r}, state={state})"


def set_state(run: FlowRun | TaskRun, state: State[Any]) -> TransitionRecord:
    """Make ``state`` the run's current state and publish the transition.

    This is the only place a run's state changes. It stamps the run ids on the state,
    keeps ``run_count``/``start_time``/``end_time`` (Prefect's global transforms), and
    puts one record on the bus; the event id is the state id and ``follows`` is the
    previous state's id.
    """
    previous = run.state
    details = state.state_details
    if type(run) is TaskRun:
        details.task_run_id = run.id
        details.flow_run_id = run.flow_run_id
    else:
        details.flow_run_id = run.id
    state_type = state.type
    if state_type is StateType.RUNNING:
        run.run_count += 1
        if run.start_time is None:
            run.start_time = state.timestamp
    elif state_type in TERMINAL_STATES:
        run.end_time = state.timestamp
    run.state = state
    record = TransitionRecord(
        run.identity,
        run.run_count,
        None
        if previous is None
        else (previous.id, previous.type, previous.name, previous.message, previous.timestamp),
        (state.id, state_type, state.name, state.message, state.timestamp),
    )
    get_bus().publish(record)
    return record
