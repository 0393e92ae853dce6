"""How events and log records become rows: pure functions, no I/O.

This is headwater's TaskRunRecorder: state-change events (``headwater.flow-run.<Name>``,
``headwater.task-run.<Name>``, carrying ``validated_state`` in their payload) rebuild the
flow-run and task-run rows; every event, state change or not, is stored in ``events``
(a run's state history is its own state-change events) with one ``event_resources`` row
per related resource.

A batch is folded in memory first: a task that went Pending → Running → Completed within
one batch costs one run upsert, not three. Every row is keyed so that delivering the same
event twice changes nothing (the event id is the state id).

A batch travels to SQLite as a few JSON arrays and one blob (see
:mod:`headwater.storage.batch`), so it is written by a single statement: building them is
string work in Python, and SQLite takes them apart without holding the GIL.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import msgspec

from headwater.engine.transitions import MESSAGE_LIMIT, TransitionRecord
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
    "state_of",
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
_decode_datetime = msgspec.json.Decoder(datetime.datetime).decode


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
    """The rows one batch of events turns into, ready to bind (see :meth:`parameters`).

    Attributes:
        received: when the writer took the batch (formatted); stamps ``events.received``
            and the heartbeat of the flow runs the batch mentions.
        events: one JSON array per event: ``[id, occurred, event, resource_id, follows,
            offset, length, [[related_id, role], ...]]``, where ``offset - base`` and
            ``length`` locate the event's JSON in :attr:`data`.
        data: the events' JSON, in order.
        base: the offset of the first event's JSON. Offsets are positions in the stream of
            all the JSON a writer stores, so that rows built separately can be joined
            into one batch (:meth:`extend`) without renumbering.
        offset: the offset of the next event's JSON.
        flows: flow name → ``flows`` row.
        flow_runs: flow run id → ``flow_runs`` row (a list, the batch's latest state).
        task_runs: task run id → ``task_runs`` row (likewise).
        heartbeats: flow run ids whose heartbeat this batch refreshes.
    """

    __slots__ = (
        "base",
        "data",
        "events",
        "flow_runs",
        "flows",
        "heartbeats",
        "offset",
        "received",
        "task_runs",
    )

    def __init__(self, received: str, offset: int = 1) -> None:
        self.received = received
        self.events: list[str] = []
        self.data: list[bytes] = []
        self.base = self.offset = offset
        self.flows: dict[str, tuple[str, str, str]] = {}
        self.flow_runs: dict[str, list[Any]] = {}
        self.task_runs: dict[str, list[Any]] = {}
        self.heartbeats: set[str] = set()

    def __len__(self) -> int:
        return len(self.events)

    def add_event(
        self,
        event_id: str,
        occurred: str,
        name: str,
        resource_id: str,
        follows: str | None,
        data: bytes,
        related: list[tuple[str, str]],
    ) -> None:
        """Add one event's row and its related resources' rows."""
        size = len(data)
        self.events.append(
            _encode(
                (event_id, occurred, name, resource_id, follows, self.offset, size, related)
            ).decode()
        )
        self.data.append(data)
        self.offset += size

    def extend(self, later: BatchRows) -> None:
        """Add the rows of ``later``, built from the events that came right after these."""
        if later.base != self.offset:
            raise ValueError(f"rows from offset {later.base} do not follow {self.offset}")
        self.events += later.events
        self.data += later.data
        self.offset = later.offset
        for name, flow in later.flows.items():
            self.flows.setdefault(name, flow)
        _merge_runs(self.flow_runs, later.flow_runs)
        _merge_runs(self.task_runs, later.task_runs)
        self.heartbeats |= later.heartbeats
        self.heartbeats.difference_update(self.flow_runs)

    def parameters(self) -> tuple[str, int, str, bytes, str, str, str, str]:
        """The values of :data:`headwater.storage.batch.BATCH_COLUMNS`, in order."""
        return (
            self.received,
            self.base,
            f"[{','.join(self.events)}]",
            b"".join(self.data),
            _encode(list(self.flows.values())).decode(),
            _encode(list(self.flow_runs.values())).decode(),
            _encode(list(self.task_runs.values())).decode(),
            _encode(sorted(self.heartbeats)).decode(),
        )


# Column positions shared by the flow_runs and task_runs rows built below.
_STATE_ID, _STATE_TYPE, _STATE_NAME, _STATE_MESSAGE, _STATE_TIMESTAMP = 5, 6, 7, 8, 9
_RUN_COUNT, _START, _END = 10, 11, 12

FLOW_RUN_COLUMNS = (
    "id, name, flow_name, flow_version, parent_flow_run_id, state_id, state_type, state_name,"
    " state_message, state_timestamp, run_count, start_time, end_time, parameters, tags, pid,"
    " hostname, heartbeat, parent_task_run_id, created"
)
TASK_RUN_COLUMNS = (
    "id, name, task_key, task_name, flow_run_id, state_id, state_type, state_name,"
    " state_message, state_timestamp, run_count, start_time, end_time, tags, flow_name, created"
)


def _fold_state(
    row: list[Any],
    state_id: str,
    state_type: str,
    state_name: str,
    message: str | None,
    timestamp: str,
    run_count: int,
) -> None:
    # The same rule as the upsert: a state older than the row's (by timestamp, then by the
    # time-ordered id) does not replace it, so a batch holding a re-delivered event in any
    # position folds to the same row.
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


def _merge_runs(rows: dict[str, list[Any]], later: dict[str, list[Any]]) -> None:
    for run_id, row in later.items():
        current = rows.get(run_id)
        if current is None:
            rows[run_id] = row
            continue
        current[1] = row[1]  # the later rows carry the run's latest name
        # the later row's latest state, then what it kept of the states before it
        _fold_state(
            current,
            row[_STATE_ID],
            row[_STATE_TYPE],
            row[_STATE_NAME],
            row[_STATE_MESSAGE],
            row[_STATE_TIMESTAMP],
            row[_RUN_COUNT],
        )
        start = row[_START]
        if start is not None and (current[_START] is None or start < current[_START]):
            current[_START] = start
        if row[-1] < current[-1]:
            current[-1] = row[-1]


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
            info.get("parent_task_run_id"),
            state[4],
        ]
        rows.flow_runs[run_id] = row
        if flow_name and flow_name not in rows.flows:
            rows.flows[flow_name] = (flow_id(flow_name), flow_name, now)
    elif info.get("name"):
        row[1] = info["name"]  # renamed (flow_run_name) within the batch: the latest
    state_id, state_type, name, message, occurred = state
    _fold_state(row, state_id, state_type, name, message, occurred, run_count)
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
    state_id, state_type, name, message, occurred = state
    _fold_state(row, state_id, state_type, name, message, occurred, run_count)


def state_of(
    payload: Mapping[str, Any], resource: Mapping[str, str], event_id: str
) -> tuple[str, str, str, Any] | None:
    """``(state id, type, name, message)`` of a state-change event, or None.

    A state change is an event about a flow run or a task run whose payload carries a
    ``validated_state`` object; what that lacks is taken from the resource's labels. The
    read side (a run's state history) applies the same rule to stored events.
    """
    validated = payload.get("validated_state")
    if not isinstance(validated, dict):
        return None
    state_type = validated.get("type") or resource.get("headwater.state-type") or ""
    return (
        str(validated.get("id") or event_id),
        state_type,
        validated.get("name") or resource.get("headwater.state-name") or state_type,
        validated.get("message"),
    )


def build_rows(
    items: Iterable[Event | EventSource], now: datetime.datetime, offset: int = 1
) -> BatchRows:
    """Turn a batch of events, in publication order, into the rows to write.

    Args:
        items: events, or compact records that materialise with ``to_event()``.
        now: the writer's clock; stamps ``received`` and run heartbeats.
        offset: where the events' JSON starts (see :attr:`BatchRows.base`).
    """
    rows = BatchRows(format_timestamp(now), offset)
    for item in items:
        if type(item) is TransitionRecord:
            _add_transition(rows, item)
            continue
        event = item.to_event()
        event_id = str(event.id)
        occurred = format_timestamp(event.occurred)
        resource_id = event.resource[RESOURCE_ID]
        follows = event.follows
        rows.add_event(
            event_id,
            occurred,
            event.event,
            resource_id,
            None if follows is None else str(follows),
            _encode(event),
            [(related[RESOURCE_ID], related.get(RESOURCE_ROLE, "")) for related in event.related],
        )
        if resource_id.startswith(FLOW_RUN_PREFIX):
            run_id = resource_id[len(FLOW_RUN_PREFIX) :]
        elif resource_id.startswith(TASK_RUN_PREFIX):
            run_id = resource_id[len(TASK_RUN_PREFIX) :]
        else:
            continue
        if getattr(item, "untrusted", False):
            continue  # an uncredentialed sender's event never changes a run's state
        found = state_of(event.payload, event.resource, event_id)
        if found is None:
            continue
        state = (*found, occurred)
        if resource_id.startswith(FLOW_RUN_PREFIX):
            _add_flow_run(rows, event, run_id, state, rows.received)
        else:
            _add_task_run(rows, event, run_id, state)
    return rows


def _occurred(stamp: str, moment: datetime.datetime) -> str:
    """The ``occurred`` column's text, from msgspec's JSON literal of the same time."""
    # msgspec writes UTC as '"2024-05-01T12:00:00.000001Z"', and leaves out a zero fraction
    if moment.tzinfo is _UTC:
        if len(stamp) == 29:
            return f"{stamp[1:-2]}+00:00"
        if len(stamp) == 22:
            return f"{stamp[1:-2]}.000000+00:00"
    # Another zone: the time the event's JSON says (msgspec drops an offset's seconds).
    return format_timestamp(_decode_datetime(stamp))


def _add_transition(rows: BatchRows, record: TransitionRecord) -> None:
    """The engine's own state changes, straight from the compact record.

    Same rows as the generic path gives for ``record.to_event()``, without building the
    Event: this is the persistence hot path (three records per task run). The event's JSON
    literals are reused as they are, which spares most of the formatting.
    """
    identity = record.identity
    data = record.event_json()
    current = record.current
    occurred = _occurred(record.stamp_literal, current[4])
    id_literal = record.id_literal
    size = len(data)
    rows.events.append(
        f'[{id_literal},"{occurred}",{record.name_literal},"{identity.resource_id}",'
        f"{record.follows_literal},{rows.offset},{size},{identity.related_index_json()}]"
    )
    rows.data.append(data)
    rows.offset += size
    run_id = identity.id_text
    message = current[3]
    run_count = record.run_count
    if identity.kind == "task-run":
        row = rows.task_runs.get(run_id)
        if row is None:
            flow_run_id = identity.flow_run_id
            flow_run_text = None if flow_run_id is None else str(flow_run_id)
            row = rows.task_runs[run_id] = [
                run_id,
                identity.name,
                identity.task_key,
                identity.task_name,
                flow_run_text,
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
            if flow_run_text is not None and flow_run_text not in rows.flow_runs:
                rows.heartbeats.add(flow_run_text)
    else:
        row = rows.flow_runs.get(run_id)
        if row is None:
            summary = identity.summary()
            flow_name = identity.flow_name or ""
            row = rows.flow_runs[run_id] = [
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
                rows.received,
                summary.get("parent_task_run_id"),
                occurred,
            ]
            if flow_name and flow_name not in rows.flows:
                rows.flows[flow_name] = (flow_id(flow_name), flow_name, rows.received)
        else:
            row[1] = identity.name  # renamed (flow_run_name) within the batch: the latest
        rows.heartbeats.discard(run_id)
    _fold_state(
        row,
        id_literal[1:-1],
        current[1]._value_,
        current[2],
        message[:MESSAGE_LIMIT] if message else "",
        occurred,
        run_count,
    )
