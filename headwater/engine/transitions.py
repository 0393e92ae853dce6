"""Transition records: how a state change travels on the bus, and its event form.

The engine publishes one compact :class:`TransitionRecord` per state change: the run's
:class:`RunIdentity` (shared by all of the run's records) and two small state snapshots.
It never holds the run's result, so a buffered record cannot keep a large result alive.

Consumers get the event in one of two forms, both built off the per-task path:
``event_json()`` (what persistence stores and the wire carries) and ``to_event()`` (the
same JSON decoded into an :class:`Event`). There is one serialisation, so the two agree by
construction. The parts of the JSON that do not change within a run (related resources,
the run summary) are encoded once per run and spliced in as raw JSON.
"""

from __future__ import annotations

import datetime
import os
import socket
import uuid
from typing import Any

import msgspec

from headwater.engine.states import StateType
from headwater.events.schema import (
    RESOURCE_ID,
    RESOURCE_NAME,
    RESOURCE_ROLE,
    Event,
    events_decoder_hook,
)

__all__ = ["RunIdentity", "StateSnapshot", "TransitionRecord", "jsonable"]

_PID = os.getpid()
_HOSTNAME = socket.gethostname()
MESSAGE_LIMIT = 100_000

# (id, type, name, message, timestamp) of a state: enough for an event, no result data.
StateSnapshot = tuple[uuid.UUID, StateType, str, "str | None", datetime.datetime]

_encode = msgspec.json.Encoder().encode
_decode_event = msgspec.json.Decoder(Event, dec_hook=events_decoder_hook).decode


def _jsonable_fallback(value: Any) -> Any:
    text = repr(value)
    return text if len(text) <= 1000 else text[:997] + "..."


def jsonable(value: Any) -> Any:
    """A JSON-safe copy of ``value``; what JSON cannot hold becomes its (short) repr."""
    try:
        return msgspec.to_builtins(value, enc_hook=_jsonable_fallback, str_keys=True)
    except Exception:
        return _jsonable_fallback(value)


def _str_or_none(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


class RunIdentity:
    """The unchanging facts about a run that every one of its events repeats."""

    __slots__ = (
        "kind",
        "id",
        "name",
        "flow_name",
        "flow_run_id",
        "flow_run_name",
        "parent_flow_run_id",
        "task_key",
        "task_name",
        "tags",
        "flow_version",
        "parameters",
        "_resource_id",
        "_id_text",
        "_related",
        "_summary",
        "_last_state",
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
        # built on first use, on the consumer side: none of this is per-task-path work
        self._resource_id: str | None = None
        self._id_text: str | None = None
        self._related: tuple[list[tuple[str, str]], msgspec.Raw] | None = None
        self._summary: tuple[int, msgspec.Raw] | None = None
        self._last_state: tuple[uuid.UUID, dict[str, Any]] | None = None

    @property
    def resource_id(self) -> str:
        resource_id = self._resource_id
        if resource_id is None:
            resource_id = self._resource_id = f"headwater.{self.kind}.{self.id_text}"
        return resource_id

    @property
    def id_text(self) -> str:
        text = self._id_text
        if text is None:
            text = self._id_text = str(self.id)
        return text

    def related_resources(self) -> list[dict[str, str]]:
        """Flow run, flow, task, parent flow run and tags, as related resources."""
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
        return related

    def related_index(self) -> tuple[list[tuple[str, str]], msgspec.Raw]:
        """``(id, role)`` pairs for indexing, and the related list as raw JSON."""
        cached = self._related
        if cached is None:
            related = self.related_resources()
            pairs = [(item[RESOURCE_ID], item[RESOURCE_ROLE]) for item in related]
            cached = self._related = (pairs, msgspec.Raw(_encode(related)))
        return cached

    def summary(self) -> dict[str, Any]:
        """The ``flow_run`` / ``task_run`` part of the payload (without ``run_count``)."""
        if self.kind == "flow-run":
            return {
                "id": self.id_text,
                "name": self.name,
                "flow_name": self.flow_name,
                "flow_version": self.flow_version,
                "parent_flow_run_id": _str_or_none(self.parent_flow_run_id),
                "parameters": jsonable(self.parameters or {}),
                "tags": sorted(self.tags),
                "pid": _PID,
                "hostname": _HOSTNAME,
            }
        return {
            "id": self.id_text,
            "name": self.name,
            "task_key": self.task_key,
            "task_name": self.task_name,
            "flow_run_id": _str_or_none(self.flow_run_id),
            "tags": sorted(self.tags),
        }

    def summary_json(self, run_count: int) -> msgspec.Raw:
        cached = self._summary
        if cached is None or cached[0] != run_count:
            summary = self.summary()
            summary["run_count"] = run_count
            cached = self._summary = (run_count, msgspec.Raw(_encode(summary)))
        return cached[1]

    def state_json(self, snapshot: StateSnapshot) -> dict[str, Any]:
        """A state as the payload shows it; the previous event's copy is reused."""
        cached = self._last_state
        if cached is not None and cached[0] == snapshot[0]:
            return cached[1]
        return _snapshot_json(snapshot)


def _snapshot_json(snapshot: StateSnapshot) -> dict[str, Any]:
    state_id, state_type, name, message, timestamp = snapshot
    return {
        "id": str(state_id),
        "type": state_type.value,
        "name": name,
        "message": (message or "")[:MESSAGE_LIMIT],
        "timestamp": timestamp.isoformat(),
    }


class _WireEvent(msgspec.Struct):
    """An Event's JSON layout, with the per-run parts as pre-encoded raw JSON."""

    occurred: datetime.datetime
    event: str
    resource: dict[str, str]
    related: msgspec.Raw
    payload: dict[str, Any]
    id: uuid.UUID
    follows: uuid.UUID | None


class TransitionRecord:
    """A state change as the bus carries it (see the module docstring)."""

    __slots__ = ("identity", "run_count", "previous", "current", "_json", "_event", "_validated")

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
        self._json: bytes | None = None
        self._event: Event | None = None
        self._validated: dict[str, Any] | None = None

    @property
    def resource_id(self) -> str:
        return self.identity.resource_id

    @property
    def previous_state_json(self) -> dict[str, Any] | None:
        """The previous state as ``initial_state`` shows it (after ``event_json()``)."""
        previous = self.previous
        return None if previous is None else self.identity.state_json(previous)

    @property
    def state_id(self) -> uuid.UUID:
        return self.current[0]

    @property
    def state_type(self) -> StateType:
        return self.current[1]

    @property
    def event_name(self) -> str:
        return f"headwater.{self.identity.kind}.{self.current[2]}"

    def state_json(self) -> dict[str, Any]:
        """The new state as the payload's ``validated_state`` shows it."""
        validated = self._validated
        if validated is None:
            identity = self.identity
            current = self.current
            validated = self._validated = identity.state_json(current)
            identity._last_state = (current[0], validated)
        return validated

    def event_json(self) -> bytes:
        """The event as JSON: what ``msgspec.json.encode(self.to_event())`` gives."""
        data = self._json
        if data is None:
            data = self._json = self._encode()
        return data

    def to_event(self) -> Event:
        event = self._event
        if event is None:
            event = self._event = _decode_event(self.event_json())
        return event

    def _encode(self) -> bytes:
        identity = self.identity
        previous = self.previous
        initial = self.previous_state_json
        validated = self.state_json()
        resource = {
            RESOURCE_ID: identity.resource_id,
            RESOURCE_NAME: identity.name,
            "headwater.run-count": str(self.run_count),
            "headwater.state-message": validated["message"],
            "headwater.state-name": validated["name"],
            "headwater.state-timestamp": validated["timestamp"],
            "headwater.state-type": validated["type"],
        }
        kind = identity.kind
        if kind == "task-run":
            resource["headwater.orchestration"] = "client"
        payload = {
            "intended": {
                "from": None if previous is None else previous[1].value,
                "to": validated["type"],
            },
            "initial_state": initial,
            "validated_state": validated,
            "task_run" if kind == "task-run" else "flow_run": identity.summary_json(self.run_count),
        }
        return _encode(
            _WireEvent(
                occurred=self.current[4],
                event=f"headwater.{kind}.{validated['name']}",
                resource=resource,
                related=identity.related_index()[1],
                payload=payload,
                id=self.current[0],
                follows=None if previous is None else previous[0],
            )
        )
