"""Transition records: how a state change travels on the bus, and its event form.

The engine publishes one compact :class:`TransitionRecord` per state change: the run's
:class:`RunIdentity` (shared by all of the run's records) and two small state snapshots.
It never holds the run's result, so a buffered record cannot keep a large result alive.

Consumers get the event in one of two forms, both built off the per-task path:
``event_json()`` (what persistence stores and the wire carries) and ``to_event()`` (the
same JSON decoded into an :class:`Event`). There is one serialisation, so the two agree by
construction. The parts of the JSON that do not change within a run (resource labels,
related resources, the run summary) are encoded once per run; the rest is spliced into them
as JSON literals made by msgspec (ids, timestamps, strings), which is several times cheaper
than building dicts and encoding them. The output is byte for byte what msgspec gives for
the same :class:`Event` (``tests/engine/test_transitions.py`` checks it).
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

_UTC = datetime.timezone.utc
_PID = os.getpid()
_HOSTNAME = socket.gethostname()
MESSAGE_LIMIT = 100_000

# (id, type, name, message, timestamp) of a state: enough for an event, no result data.
StateSnapshot = tuple[uuid.UUID, StateType, str, "str | None", datetime.datetime]

_encode = msgspec.json.Encoder().encode
_decode_event = msgspec.json.Decoder(Event, dec_hook=events_decoder_hook).decode

# JSON literals of the values that recur in every event: state types, and state names
# (a small set in practice; the cache is bounded in case a program invents many).
_TYPE_LITERALS = {state_type: f'"{state_type.value}"' for state_type in StateType}
_NAME_LITERALS: dict[str, str] = {}
_NAME_CACHE_LIMIT = 1024


def _literal(text: str) -> str:
    """``text`` as a JSON string literal, exactly as msgspec writes it."""
    return _encode(text).decode()


def _name_literal(name: str) -> str:
    literal = _NAME_LITERALS.get(name)
    if literal is None:
        literal = _literal(name)
        if len(_NAME_LITERALS) < _NAME_CACHE_LIMIT:
            _NAME_LITERALS[name] = literal
    return literal


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
        "deployment",
        "parent_task_run_id",
        "_resource_id",
        "_id_text",
        "_related",
        "_summary",
        "_fragments",
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
        deployment: tuple[uuid.UUID, str] | None = None,
        parent_task_run_id: uuid.UUID | None = None,
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
        self.deployment = deployment  # (id, "flow/deployment") of a deployment's run
        self.parent_task_run_id = parent_task_run_id  # a subflow's task run in its parent
        # built on first use, on the consumer side: none of this is per-task-path work
        self._resource_id: str | None = None
        self._id_text: str | None = None
        self._related: _Related | None = None
        self._summary: str | None = None
        self._fragments: tuple[str, str, str] | None = None
        # the JSON of the state most recently encoded: the next event's initial state (one
        # tuple, replaced whole, so a consumer on another thread never sees half of it)
        self._last_state: tuple[uuid.UUID, str] | None = None

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
            text = self._id_text = _encode(self.id).decode()[1:-1]  # str(id), faster
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
        if self.deployment is not None:
            related.append(
                {
                    RESOURCE_ID: f"headwater.deployment.{self.deployment[0]}",
                    RESOURCE_ROLE: "deployment",
                    RESOURCE_NAME: self.deployment[1],
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

    def related_index(self) -> tuple[list[tuple[str, str]], str]:
        """``(id, role)`` pairs for indexing, and the related list as JSON text."""
        related = self._related_parts()
        return related.pairs, related.json

    def related_index_json(self) -> str:
        """The ``(id, role)`` pairs of :meth:`related_index` as a JSON array of arrays."""
        return self._related_parts().pairs_json

    def _related_parts(self) -> _Related:
        related = self._related
        if related is None:
            if self.kind == "task-run":
                # The task runs of one task in one flow run all relate to the same
                # resources: work that out once, not once per task run.
                key = (
                    self.flow_run_id,
                    self.flow_run_name,
                    self.flow_name,
                    self.task_key,
                    self.task_name,
                    self.tags,
                    self.parent_flow_run_id,
                )
                related = _SHARED.get(key)
                if related is None:
                    if len(_SHARED) >= _SHARED_LIMIT:
                        _SHARED.clear()
                    related = _SHARED[key] = _Related(self)
            else:
                related = _Related(self)
            self._related = related
        return related

    def summary(self) -> dict[str, Any]:
        """The ``flow_run`` / ``task_run`` part of the payload (without ``run_count``)."""
        if self.kind == "flow-run":
            summary = {
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
            if self.deployment is not None:
                summary["deployment_id"] = str(self.deployment[0])
            if self.parent_task_run_id is not None:
                summary["parent_task_run_id"] = str(self.parent_task_run_id)
            return summary
        return {
            "id": self.id_text,
            "name": self.name,
            "task_key": self.task_key,
            "task_name": self.task_name,
            "flow_run_id": _str_or_none(self.flow_run_id),
            "tags": sorted(self.tags),
        }

    def summary_json(self, run_count: int) -> str:
        """The summary with ``run_count`` (its last key), as JSON text."""
        head = self._summary
        if head is None:
            if self.kind == "task-run":
                # id and name first, then what the run shares with its siblings
                tail = self._related_parts().summary_tail
                head = f'{{"id":"{self.id_text}","name":{_literal(self.name)},{tail}'
            else:
                # everything up to run_count's value: '{"id":...,"hostname":...,"run_count":'
                head = _encode(self.summary()).decode()[:-1] + ',"run_count":'
            self._summary = head
        return f"{head}{run_count}}}"

    def fragments(self) -> tuple[str, str, str]:
        """The constant pieces of the run's event JSON, as text: the resource's labels
        before ``headwater.run-count``'s value, the labels after the state labels, and
        the related resources."""
        fragments = self._fragments
        if fragments is None:
            orchestration = ',"headwater.orchestration":"client"' if self.kind == "task-run" else ""
            fragments = self._fragments = (
                f'{{"{RESOURCE_ID}":{_literal(self.resource_id)},'
                f'"{RESOURCE_NAME}":{_literal(self.name)},"headwater.run-count":"',
                orchestration,
                self._related_parts().json,
            )
        return fragments


class _Related:
    """A run's related resources, worked out once: as JSON, as index pairs (and as JSON),
    and for a task run the part of its summary its siblings share."""

    __slots__ = ("json", "pairs", "pairs_json", "summary_tail")

    def __init__(self, identity: RunIdentity) -> None:
        related = identity.related_resources()
        self.json = _encode(related).decode()
        self.pairs = [(item[RESOURCE_ID], item[RESOURCE_ROLE]) for item in related]
        self.pairs_json = _encode(self.pairs).decode()
        self.summary_tail = ""
        if identity.kind == "task-run":
            shared = identity.summary()
            del shared["id"], shared["name"]
            self.summary_tail = _encode(shared).decode()[1:-1] + ',"run_count":'


_SHARED: dict[tuple[Any, ...], _Related] = {}
_SHARED_LIMIT = 1024


def _snapshot_json(snapshot: StateSnapshot) -> dict[str, Any]:
    state_id, state_type, name, message, timestamp = snapshot
    return {
        "id": str(state_id),
        "type": state_type.value,
        "name": name,
        "message": (message or "")[:MESSAGE_LIMIT],
        "timestamp": timestamp.isoformat(),
    }


class TransitionRecord:
    """A state change as the bus carries it (see the module docstring).

    After :meth:`event_json`, the ``*_literal`` attributes hold JSON literals it was made
    of, for consumers that store the event's fields alongside it: the event id, the
    state's timestamp as msgspec writes it (``occurred``), the event name and ``follows``.
    """

    __slots__ = (
        "identity",
        "run_count",
        "previous",
        "current",
        "id_literal",
        "stamp_literal",
        "name_literal",
        "follows_literal",
        "_json",
        "_event",
    )

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
        self.id_literal = self.stamp_literal = self.name_literal = self.follows_literal = ""
        self._json: bytes | None = None
        self._event: Event | None = None

    @property
    def resource_id(self) -> str:
        return self.identity.resource_id

    @property
    def previous_state_json(self) -> dict[str, Any] | None:
        """The previous state as ``initial_state`` shows it."""
        previous = self.previous
        return None if previous is None else _snapshot_json(previous)

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
        return _snapshot_json(self.current)

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
        # The layout of Event's JSON (field order occurred, event, resource, related,
        # payload, id, follows), with the labels and payload keys Prefect's events carry.
        identity = self.identity
        kind = identity.kind
        state_id, state_type, name, message, timestamp = self.current
        state_literal = _encode(state_id).decode()
        stamp = _encode(timestamp).decode()
        iso = _iso_literal(stamp, timestamp)
        type_literal = _TYPE_LITERALS[state_type]
        name_literal = _name_literal(name)
        message_literal = _literal(message[:MESSAGE_LIMIT]) if message else '""'
        validated = (
            f'{{"id":{state_literal},"type":{type_literal},"name":{name_literal},'
            f'"message":{message_literal},"timestamp":{iso}}}'
        )
        previous = self.previous
        if previous is None:
            initial = follows = intended_from = "null"
        else:
            last = identity._last_state
            if last is not None and last[0] == previous[0]:
                initial = last[1]
            else:
                initial = _snapshot_literal(previous)
            follows = _encode(previous[0]).decode()
            intended_from = _TYPE_LITERALS[previous[1]]
        identity._last_state = (state_id, validated)
        event_literal = f'"headwater.{kind}.{name_literal[1:]}'
        resource_head, resource_tail, related = identity.fragments()
        summary_key = "task_run" if kind == "task-run" else "flow_run"
        self.id_literal = state_literal
        self.stamp_literal = stamp
        self.name_literal = event_literal
        self.follows_literal = follows
        return (
            f'{{"occurred":{stamp},"event":{event_literal},"resource":{resource_head}'
            f'{self.run_count}","headwater.state-message":{message_literal},'
            f'"headwater.state-name":{name_literal},"headwater.state-timestamp":{iso},'
            f'"headwater.state-type":{type_literal}{resource_tail}}},"related":{related},'
            f'"payload":{{"intended":{{"from":{intended_from},"to":{type_literal}}},'
            f'"initial_state":{initial},"validated_state":{validated},'
            f'"{summary_key}":{identity.summary_json(self.run_count)}}},'
            f'"id":{state_literal},"follows":{follows}}}'
        ).encode()


def _iso_literal(stamp: str, timestamp: datetime.datetime) -> str:
    """``timestamp.isoformat()`` as a JSON literal, from msgspec's literal of it."""
    # For UTC (what the engine's states use) msgspec writes "Z" where isoformat() writes
    # "+00:00", and the rest is the same; other zones are left to isoformat() (msgspec
    # drops the seconds of an offset, for one).
    if timestamp.tzinfo is _UTC:
        return f'{stamp[:-2]}+00:00"'
    return f'"{timestamp.isoformat()}"'


def _snapshot_literal(snapshot: StateSnapshot) -> str:
    state_id, state_type, name, message, timestamp = snapshot
    message_literal = _literal(message[:MESSAGE_LIMIT]) if message else '""'
    return (
        f'{{"id":{_encode(state_id).decode()},"type":{_TYPE_LITERALS[state_type]},'
        f'"name":{_name_literal(name)},"message":{message_literal},'
        f'"timestamp":{_iso_literal(_encode(timestamp).decode(), timestamp)}}}'
    )
