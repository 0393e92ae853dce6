"""How events and log records become rows: pure functions, no I/O.

This is headwater's TaskRunRecorder: state-change events (``headwater.flow-run.<Name>``,
``headwater.task-run.<Name>``, carrying ``validated_state`` in their payload) rebuild the
flow-run and task-run rows and their state history; every event, state change or not, is
stored in ``events`` with one ``event_resources`` row per related resource.

A batch is folded in memory first: a task that went Pending → Running → Completed within
one batch costs one run upsert, not three. Every row is keyed so that delivering the same
event twice changes nothing (the event id is the state id).
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import msgspec

from headwater.engine.transitions import TransitionRecord
from headwater.events.schema import RESOURCE_ID, RESOURCE_NAME, RESOURCE_ROLE, Event, EventSource

__all__ = [
    "FINAL_STATE_TYPES",
    "FLOW_RUN_COLUMNS",
    "FLOW_RUN_PREFIX",
    "TASK_RUN_COLUMNS",
    "TASK_RUN_PREFIX",
    "BatchRows",
    "LogRecord",
    "RunLog",
    "build_rows",
    "flow_id",
    "format_timestamp",
    "log_row",
    "parse_timestamp",
    "truncate_message",
]

FLOW_RUN_PREFIX = "headwater.flow-run."
TASK_RUN_PREFIX = "headwater.task-run."
FINAL_STATE_TYPES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "CRASHED"})

_UTC = datetime.timezone.utc
_FLOW_NAMESPACE = uuid.UUID("6f1a9c8e-3b52-5d4e-9a07-1c2b3d4e5f60")
_encode = msgspec.json.Encoder().encode


def format_timestamp(moment: datetime.datetime) -> str:
    """UTC ISO-8601 text with microseconds: the fixed-width form every timestamp column uses."""
    if moment.tzinfo is not _UTC:
        moment = moment.replace(tzinfo=_UTC) if moment.tzinfo is None else moment.astimezone(_UTC)
    return moment.isoformat(timespec="microseconds")


def parse_timestamp(text: str) -> datetime.datetime:
    """Inverse of :func:`format_timestamp`."""
    return datetime.datetime.fromisoformat(text)


def flow_id(flow_name: str) -> str:
    """A flow's id: derived from its name, so every process agrees without a lookup."""
    return str(uuid.uuid5(_FLOW_NAMESPACE, flow_name))


class RunLog(msgspec.Struct, frozen=True, kw_only=True):
    """A log record of a flow or task run, as the storage layer receives it.

    Attributes:
        flow_run_id: the flow run the record belongs to (None outside flow runs).
        task_run_id: the task run, when the record was logged inside one.
        name: the logger's name.
        level: the numeric logging level.
        message: the formatted message.
        timestamp: when it was logged (UTC).
    """

    flow_run_id: uuid.UUID | None
    task_run_id: uuid.UUID | None
    name: str
    level: int
    message: str
    timestamp: datetime.datetime


class LogRecord(Protocol):
    """What :func:`log_row` reads: :class:`RunLog`, or any object with the same attributes."""

    @property
    def flow_run_id(self) -> uuid.UUID | None: ...
    @property
    def task_run_id(self) -> uuid.UUID | None: ...
    @property
    def name(self) -> str: ...
    @property
    def level(self) -> int: ...
    @property
    def message(self) -> str: ...
    @property
    def timestamp(self) -> datetime.datetime: ...


def truncate_message(message: str, limit: int) -> str:
    """Keep the first ``limit`` characters and say how many were cut; never drop the record."""
    if len(message) <= limit:
        return message
    return f"{message[:limit]}... [truncated {len(message) - limit} characters]"


def log_row(record: LogRecord, limit: int) -> tuple[Any, ...]:
    """The ``logs`` row for ``record``, its message truncated to ``limit`` characters."""
    flow_run_id = record.flow_run_id
    task_run_id = record.task_run_id
    return (
        None if flow_run_id is None else str(flow_run_id),
        None if task_run_id is None else str(task_run_id),
        record.name,
        int(record.level),
        truncate_message(record.message, limit),
        format_timestamp(record.timestamp),
    )


class BatchRows:
    """The rows one batch of events turns into, grouped by statement.

    Attributes:
        events: ``events`` rows.
        event_resources: ``event_resources`` rows.
        states: ``run_states`` rows.
        flows: flow name → ``flows`` row.
        flow_runs: flow run id → ``flow_runs`` row (a list, the batch's latest state).
        task_runs: task run id → ``task_runs`` row (likewise).
        heartbeats: flow run ids whose heartbeat this batch refreshes.
    """

    __slots__ = (
        "event_resources",
        "events",
        "flow_runs",
        "flows",
        "heartbeats",
        "states",
        "task_runs",
    )

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.event_resources: list[tuple[str, str, str, str]] = []
        self.states: list[tuple[Any, ...]] = []
        self.flows: dict[str, tuple[str, str, str]] = {}
        self.flow_runs: dict[str, list[Any]] = {}
        self.task_runs: dict[str, list[Any]] = {}
        self.heartbeats: set[str] = set()


# Column positions shared by the flow_runs and task_runs rows built below.
_STATE_ID, _STATE_TYPE, _STATE_NAME, _STATE_MESSAGE, _STATE_TIMESTAMP = 5, 6, 7, 8, 9
_RUN_COUNT, _START, _END = 10, 11, 12

FLOW_RUN_COLUMNS = (
    "id, name, flow_name, flow_version, parent_flow_run_id, state_id, state_type, state_name,"
    " state_message, state_timestamp, run_count, start_time, end_time, parameters, tags, pid,"
    " hostname, heartbeat, created"
)
TASK_RUN_COLUMNS = (
    "id, name, task_key, task_name, flow_run_id, state_id, state_type, state_name,"
    " state_message, state_timestamp, run_count, start_time, end_time, tags, flow_name, created"
)


def _fold_state(
    row: list[Any], state: tuple[str, str, str, str | None, str], run_count: int
) -> None:
    # The same rule as the upsert: a state older than the row's (by timestamp, then by the
    # time-ordered id) does not replace it, so a batch holding a re-delivered event in any
    # position folds to the same row.
    state_id, state_type, state_name, message, timestamp = state
    current = row[_STATE_TIMESTAMP]
    if current is None or (timestamp, state_id) >= (current, row[_STATE_ID]):
        row[_STATE_ID] = state_id
        row[_STATE_TYPE] = state_type
        row[_STATE_NAME] = state_name
        row[_STATE_MESSAGE] = message
        row[_STATE_TIMESTAMP] = timestamp
        row[_END] = timestamp if state_type in FINAL_STATE_TYPES else None
    row[_RUN_COUNT] = max(row[_RUN_COUNT], run_count)
    if state_type == "RUNNING" and (row[_START] is None or timestamp < row[_START]):
        row[_START] = timestamp
    if timestamp < row[-1]:
        row[-1] = timestamp  # created: the earliest state seen


def _related_name(event: Event, role: str) -> str | None:
    for related in event.related:
        if related.get(RESOURCE_ROLE) == role:
            return related.get(RESOURCE_NAME)
    return None


def _run_count(info: Mapping[str, Any], resource: Mapping[str, str]) -> int:
    count: Any = info.get("run_count")
    if count is None:
        count = resource.get("headwater.run-count", 0)
    try:
        return int(count)
    except (TypeError, ValueError):
        return 0


def _add_flow_run(
    rows: BatchRows, event: Event, run_id: str, state: tuple[Any, ...], now: str
) -> None:
    info = event.payload.get("flow_run") or {}
    run_count = _run_count(info, event.resource)
    row = rows.flow_runs.get(run_id)
    if row is None:
        flow_name = info.get("flow_name") or _related_name(event, "flow") or ""
        parent = info.get("parent_flow_run_id")
        row = [
            run_id,
            info.get("name") or event.resource.get(RESOURCE_NAME) or run_id,
            flow_name,
            info.get("flow_version"),
            None if parent is None else str(parent),
            None,
            None,
            None,
            None,
            None,  # state columns, set by _fold_state
            run_count,
            None,
            None,
            _encode(info.get("parameters") or {}).decode(),
            _encode(info.get("tags") or []).decode(),
            info.get("pid"),
            info.get("hostname"),
            now,
            state[4],
        ]
        rows.flow_runs[run_id] = row
        if flow_name and flow_name not in rows.flows:
            rows.flows[flow_name] = (flow_id(flow_name), flow_name, now)
    _fold_state(row, state, run_count)
    rows.heartbeats.discard(run_id)


def _add_task_run(rows: BatchRows, event: Event, run_id: str, state: tuple[Any, ...]) -> None:
    info = event.payload.get("task_run") or {}
    run_count = _run_count(info, event.resource)
    row = rows.task_runs.get(run_id)
    if row is None:
        flow_run_id = info.get("flow_run_id")
        row = [
            run_id,
            info.get("name") or event.resource.get(RESOURCE_NAME) or run_id,
            info.get("task_key"),
            info.get("task_name"),
            None if flow_run_id is None else str(flow_run_id),
            None,
            None,
            None,
            None,
            None,  # state columns, set by _fold_state
            run_count,
            None,
            None,
            _encode(info.get("tags") or []).decode(),
            _related_name(event, "flow"),
            state[4],
        ]
        rows.task_runs[run_id] = row
        if flow_run_id is not None and str(flow_run_id) not in rows.flow_runs:
            rows.heartbeats.add(str(flow_run_id))
    _fold_state(row, state, run_count)


def build_rows(items: Iterable[Event | EventSource], now: datetime.datetime) -> BatchRows:
    """Turn a batch of events, in publication order, into the rows to write.

    Args:
        items: events, or compact records that materialise with ``to_event()``.
        now: the writer's clock; stamps ``received`` and run heartbeats.
    """
    rows = BatchRows()
    received = format_timestamp(now)
    events = rows.events
    event_resources = rows.event_resources
    for item in items:
        if type(item) is TransitionRecord:
            _add_transition(rows, item, received)
            continue
        event = item.to_event()
        event_id = str(event.id)
        occurred = format_timestamp(event.occurred)
        resource_id = event.resource[RESOURCE_ID]
        follows = event.follows
        events.append(
            (
                event_id,
                occurred,
                event.event,
                resource_id,
                None if follows is None else str(follows),
                received,
                _encode(event).decode(),
            )
        )
        for related in event.related:
            event_resources.append(
                (related[RESOURCE_ID], occurred, event_id, related.get(RESOURCE_ROLE, ""))
            )
        validated = event.payload.get("validated_state")
        if not isinstance(validated, dict):
            continue
        if resource_id.startswith(FLOW_RUN_PREFIX):
            run_id = resource_id[len(FLOW_RUN_PREFIX) :]
        elif resource_id.startswith(TASK_RUN_PREFIX):
            run_id = resource_id[len(TASK_RUN_PREFIX) :]
        else:
            continue
        state_type = validated.get("type") or event.resource.get("headwater.state-type") or ""
        state = (
            str(validated.get("id") or event_id),
            state_type,
            validated.get("name") or event.resource.get("headwater.state-name") or state_type,
            validated.get("message"),
            occurred,
        )
        rows.states.append((run_id, occurred, state[0], state[1], state[2], state[3]))
        if resource_id.startswith(FLOW_RUN_PREFIX):
            _add_flow_run(rows, event, run_id, state, received)
        else:
            _add_task_run(rows, event, run_id, state)
    return rows


def _add_transition(rows: BatchRows, record: TransitionRecord, received: str) -> None:
    """The engine's own state changes, straight from the compact record.

    Same rows as the generic path gives for ``record.to_event()``, without building the
    Event: this is the persistence hot path (three records per task run).
    """
    identity = record.identity
    data = record.event_json()
    validated = record.state_json()
    previous = record.previous_state_json
    event_id = validated["id"]
    occurred = format_timestamp(record.current[4])
    resource_id = identity.resource_id
    rows.events.append(
        (
            event_id,
            occurred,
            f"headwater.{identity.kind}.{validated['name']}",
            resource_id,
            None if previous is None else previous["id"],
            received,
            data.decode(),
        )
    )
    event_resources = rows.event_resources
    for related_id, role in identity.related_index()[0]:
        event_resources.append((related_id, occurred, event_id, role))
    run_id = identity.id_text
    state = (event_id, validated["type"], validated["name"], validated["message"], occurred)
    rows.states.append((run_id, occurred, *state[:4]))
    run_count = record.run_count
    if identity.kind == "flow-run":
        row = rows.flow_runs.get(run_id)
        if row is None:
            summary = identity.summary()
            flow_name = identity.flow_name or ""
            row = [
                run_id,
                identity.name,
                flow_name,
                identity.flow_version,
                summary["parent_flow_run_id"],
                None,
                None,
                None,
                None,
                None,  # state columns, set by _fold_state
                run_count,
                None,
                None,
                _encode(summary["parameters"]).decode(),
                _encode(summary["tags"]).decode(),
                summary["pid"],
                summary["hostname"],
                received,
                occurred,
            ]
            rows.flow_runs[run_id] = row
            if flow_name and flow_name not in rows.flows:
                rows.flows[flow_name] = (flow_id(flow_name), flow_name, received)
        _fold_state(row, state, run_count)
        rows.heartbeats.discard(run_id)
        return
    row = rows.task_runs.get(run_id)
    if row is None:
        flow_run_id = None if identity.flow_run_id is None else str(identity.flow_run_id)
        row = [
            run_id,
            identity.name,
            identity.task_key,
            identity.task_name,
            flow_run_id,
            None,
            None,
            None,
            None,
            None,  # state columns, set by _fold_state
            run_count,
            None,
            None,
            _encode(sorted(identity.tags)).decode(),
            identity.flow_name,
            occurred,
        ]
        rows.task_runs[run_id] = row
        if flow_run_id is not None and flow_run_id not in rows.flow_runs:
            rows.heartbeats.add(flow_run_id)
    _fold_state(row, state, run_count)
