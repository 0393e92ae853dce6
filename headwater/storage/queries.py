"""Reading run history: flow runs, task runs, their state history and logs.

Every function takes an open :class:`~headwater.storage.database.Database` and reads on
its reader connection, inside one read transaction, so a run and its history come from
the same snapshot. Time ranges (``since``/``until``, inclusive) and ordering apply to a
run's ``created`` time, the time of the first state recorded for it.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from typing import Any, Literal

import aiosqlite
import msgspec

from headwater.storage.database import Database
from headwater.storage.rows import (
    FLOW_RUN_PREFIX,
    TASK_RUN_PREFIX,
    format_timestamp,
    parse_timestamp,
    state_of,
)

__all__ = [
    "FlowRunDetail",
    "FlowRunRecord",
    "LogEntry",
    "StateRecord",
    "TaskRunDetail",
    "TaskRunRecord",
    "read_flow_run",
    "read_flow_runs",
    "read_logs",
    "read_task_run",
    "read_task_runs",
]

Order = Literal["ASC", "DESC"]


class StateRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of a run's state history."""

    id: uuid.UUID
    type: str
    name: str
    message: str | None
    timestamp: datetime.datetime


class FlowRunRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A stored flow run; ``state`` is its latest state."""

    id: uuid.UUID
    name: str
    flow_name: str
    flow_version: str | None
    parent_flow_run_id: uuid.UUID | None
    state: StateRecord
    run_count: int
    start_time: datetime.datetime | None
    end_time: datetime.datetime | None
    parameters: dict[str, Any]
    tags: list[str]
    pid: int | None
    hostname: str | None
    heartbeat: datetime.datetime | None
    created: datetime.datetime


class TaskRunRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A stored task run; ``state`` is its latest state."""

    id: uuid.UUID
    name: str
    task_key: str | None
    task_name: str | None
    flow_run_id: uuid.UUID | None
    flow_name: str | None
    state: StateRecord
    run_count: int
    start_time: datetime.datetime | None
    end_time: datetime.datetime | None
    tags: list[str]
    created: datetime.datetime


class LogEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A stored run log record."""

    id: int
    flow_run_id: uuid.UUID | None
    task_run_id: uuid.UUID | None
    name: str
    level: int
    message: str
    timestamp: datetime.datetime


class FlowRunDetail(msgspec.Struct, frozen=True, kw_only=True):
    """A flow run with its whole state history (oldest first) and its logs."""

    run: FlowRunRecord
    states: list[StateRecord]
    logs: list[LogEntry]


class TaskRunDetail(msgspec.Struct, frozen=True, kw_only=True):
    """A task run with its whole state history (oldest first) and its logs."""

    run: TaskRunRecord
    states: list[StateRecord]
    logs: list[LogEntry]


_FLOW_RUN_SELECT = (
    "SELECT id, name, flow_name, flow_version, parent_flow_run_id, state_id, state_type,"
    " state_name, state_message, state_timestamp, run_count, start_time, end_time, parameters,"
    " tags, pid, hostname, heartbeat, created FROM flow_runs"
)
_TASK_RUN_SELECT = (
    "SELECT id, name, task_key, task_name, flow_run_id, flow_name, state_id, state_type,"
    " state_name, state_message, state_timestamp, run_count, start_time, end_time, tags,"
    " created FROM task_runs"
)
_LOG_SELECT = "SELECT id, flow_run_id, task_run_id, name, level, message, timestamp FROM logs"


def _time(text: str | None) -> datetime.datetime | None:
    return None if text is None else parse_timestamp(text)


def _uuid(text: str | None) -> uuid.UUID | None:
    return None if text is None else uuid.UUID(text)


def _state(state_id: str, type_: str, name: str, message: str | None, ts: str) -> StateRecord:
    return StateRecord(
        id=uuid.UUID(state_id),
        type=type_,
        name=name,
        message=message,
        timestamp=parse_timestamp(ts),
    )


def _flow_run(row: Sequence[Any]) -> FlowRunRecord:
    return FlowRunRecord(
        id=uuid.UUID(row[0]),
        name=row[1],
        flow_name=row[2],
        flow_version=row[3],
        parent_flow_run_id=_uuid(row[4]),
        state=_state(*row[5:10]),
        run_count=row[10],
        start_time=_time(row[11]),
        end_time=_time(row[12]),
        parameters=msgspec.json.decode(row[13]),
        tags=msgspec.json.decode(row[14]),
        pid=row[15],
        hostname=row[16],
        heartbeat=_time(row[17]),
        created=parse_timestamp(row[18]),
    )


def _task_run(row: Sequence[Any]) -> TaskRunRecord:
    return TaskRunRecord(
        id=uuid.UUID(row[0]),
        name=row[1],
        task_key=row[2],
        task_name=row[3],
        flow_run_id=_uuid(row[4]),
        flow_name=row[5],
        state=_state(*row[6:11]),
        run_count=row[11],
        start_time=_time(row[12]),
        end_time=_time(row[13]),
        tags=msgspec.json.decode(row[14]),
        created=parse_timestamp(row[15]),
    )


def _log(row: Sequence[Any]) -> LogEntry:
    return LogEntry(
        id=row[0],
        flow_run_id=_uuid(row[1]),
        task_run_id=_uuid(row[2]),
        name=row[3],
        level=row[4],
        message=row[5],
        timestamp=parse_timestamp(row[6]),
    )


def _as_list(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


class _Where:
    """Collects SQL conditions and their parameters."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.params: list[Any] = []

    def add(self, clause: str, *params: Any) -> None:
        self.clauses.append(clause)
        self.params.extend(params)

    def any_of(self, column: str, values: list[str] | None) -> None:
        if values is not None:
            self.add(f"{column} IN ({', '.join('?' * len(values))})", *values)

    def common(
        self,
        state_type: str | Sequence[str] | None,
        state_name: str | Sequence[str] | None,
        flow_name: str | Sequence[str] | None,
        tags: Sequence[str] | None,
        since: datetime.datetime | None,
        until: datetime.datetime | None,
    ) -> None:
        self.any_of("state_type", _as_list(state_type))
        self.any_of("state_name", _as_list(state_name))
        self.any_of("flow_name", _as_list(flow_name))
        for tag in tags or ():
            self.add("EXISTS (SELECT 1 FROM json_each(tags) WHERE json_each.value = ?)", tag)
        if since is not None:
            self.add("created >= ?", format_timestamp(since))
        if until is not None:
            self.add("created <= ?", format_timestamp(until))

    def sql(self) -> str:
        return f" WHERE {' AND '.join(self.clauses)}" if self.clauses else ""


def _page(order: Order, limit: int, offset: int) -> tuple[str, list[int]]:
    direction = "ASC" if order == "ASC" else "DESC"
    return f" ORDER BY created {direction}, id {direction} LIMIT ? OFFSET ?", [limit, offset]


async def _fetch(reader: aiosqlite.Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    async with reader.execute(sql, params) as cursor:
        return list(await cursor.fetchall())


async def read_flow_runs(
    database: Database,
    *,
    state_type: str | Sequence[str] | None = None,
    state_name: str | Sequence[str] | None = None,
    flow_name: str | Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
    parent_flow_run_id: uuid.UUID | None = None,
    limit: int = 50,
    offset: int = 0,
    order: Order = "DESC",
) -> list[FlowRunRecord]:
    """Flow runs matching every filter given, newest first by default.

    Args:
        state_type: one type (``"FAILED"``) or several, OR-ed.
        state_name: one state name (``"TimedOut"``) or several, OR-ed.
        flow_name: one flow name or several, OR-ed.
        tags: runs carrying every one of these tags.
        since: created at or after.
        until: created at or before.
        parent_flow_run_id: subflow runs of this flow run.
        limit: at most this many runs.
        offset: skip this many first.
        order: ``"DESC"`` (newest first) or ``"ASC"``, by created time.
    """
    where = _Where()
    where.common(state_type, state_name, flow_name, tags, since, until)
    if parent_flow_run_id is not None:
        where.add("parent_flow_run_id = ?", str(parent_flow_run_id))
    tail, page = _page(order, limit, offset)
    async with database.read() as reader:
        rows = await _fetch(reader, _FLOW_RUN_SELECT + where.sql() + tail, where.params + page)
    return [_flow_run(row) for row in rows]


async def read_task_runs(
    database: Database,
    *,
    flow_run_id: uuid.UUID | None = None,
    state_type: str | Sequence[str] | None = None,
    state_name: str | Sequence[str] | None = None,
    flow_name: str | Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
    limit: int = 50,
    offset: int = 0,
    order: Order = "DESC",
) -> list[TaskRunRecord]:
    """Task runs matching every filter given (see :func:`read_flow_runs`), newest first.

    Args:
        flow_run_id: task runs of this flow run.
    """
    where = _Where()
    if flow_run_id is not None:
        where.add("flow_run_id = ?", str(flow_run_id))
    where.common(state_type, state_name, flow_name, tags, since, until)
    tail, page = _page(order, limit, offset)
    async with database.read() as reader:
        rows = await _fetch(reader, _TASK_RUN_SELECT + where.sql() + tail, where.params + page)
    return [_task_run(row) for row in rows]


class _Payload(msgspec.Struct, frozen=True):
    validated_state: Any = None


class _StateChange(msgspec.Struct, frozen=True):
    """The parts of a stored event that say which state it recorded (the rest is skipped)."""

    resource: dict[str, str] = {}
    payload: _Payload = _Payload()


_decode_state_change = msgspec.json.Decoder(_StateChange).decode


async def _states(reader: aiosqlite.Connection, resource_id: str) -> list[StateRecord]:
    """A run's state history: the state-change events about it, oldest first."""
    rows = await _fetch(
        reader,
        "SELECT occurred, id, data FROM events WHERE resource_id = ? ORDER BY occurred, id",
        (resource_id,),
    )
    states: dict[tuple[str, str], StateRecord] = {}
    for occurred, event_id, data in rows:
        try:
            change = _decode_state_change(data)
        except msgspec.DecodeError:
            continue  # a row this version cannot read is skipped, as read_events does
        payload = {"validated_state": change.payload.validated_state}
        found = state_of(payload, change.resource, event_id)
        if found is not None:
            state_id, type_, name, message = found
            # one entry per (time, state), as when the history had a table of its own
            states.setdefault(
                (occurred, state_id), _state(state_id, type_, name, message, occurred)
            )
    return [states[key] for key in sorted(states)]


async def _read_run(
    database: Database, select: str, prefix: str, log_column: str, run_id: str, log_limit: int
) -> tuple[Sequence[Any], list[StateRecord], list[LogEntry]] | None:
    async with database.read() as reader:
        rows = await _fetch(reader, select + " WHERE id = ?", (run_id,))
        if not rows:
            return None
        states = await _states(reader, prefix + run_id)
        logs = await _fetch(
            reader,
            _LOG_SELECT + f" WHERE {log_column} = ? ORDER BY timestamp, id LIMIT ?",
            (run_id, log_limit),
        )
    return rows[0], states, [_log(row) for row in logs]


async def read_flow_run(
    database: Database, flow_run_id: uuid.UUID, *, log_limit: int = 10_000
) -> FlowRunDetail | None:
    """One flow run with its state history and its logs (oldest first), or None."""
    found = await _read_run(
        database, _FLOW_RUN_SELECT, FLOW_RUN_PREFIX, "flow_run_id", str(flow_run_id), log_limit
    )
    if found is None:
        return None
    row, states, logs = found
    return FlowRunDetail(run=_flow_run(row), states=states, logs=logs)


async def read_task_run(
    database: Database, task_run_id: uuid.UUID, *, log_limit: int = 10_000
) -> TaskRunDetail | None:
    """One task run with its state history and its logs (oldest first), or None."""
    found = await _read_run(
        database, _TASK_RUN_SELECT, TASK_RUN_PREFIX, "task_run_id", str(task_run_id), log_limit
    )
    if found is None:
        return None
    row, states, logs = found
    return TaskRunDetail(run=_task_run(row), states=states, logs=logs)


async def read_logs(
    database: Database,
    *,
    flow_run_id: uuid.UUID | None = None,
    task_run_id: uuid.UUID | None = None,
    min_level: int | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[LogEntry]:
    """Run logs, oldest first, optionally of one flow run or task run and at least ``min_level``."""
    where = _Where()
    if flow_run_id is not None:
        where.add("flow_run_id = ?", str(flow_run_id))
    if task_run_id is not None:
        where.add("task_run_id = ?", str(task_run_id))
    if min_level is not None:
        where.add("level >= ?", min_level)
    sql = _LOG_SELECT + where.sql() + " ORDER BY timestamp, id LIMIT ? OFFSET ?"
    async with database.read() as reader:
        rows = await _fetch(reader, sql, [*where.params, limit, offset])
    return [_log(row) for row in rows]
