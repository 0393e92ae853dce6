"""Finding flow runs whose process died without reporting a final state, and marking them Crashed.

A flow run's events carry the pid and hostname of the process running it. A run still
Pending, Running or Cancelling whose process, on this machine, no longer exists cannot
finish: it is marked Crashed. Runs on another machine cannot be probed; they are marked
only when ``stale_after`` is given and their heartbeat (refreshed by every write about the
run or its tasks) is older than that.

The Crashed state is a real event, ``headwater.flow-run.Crashed``, following the run's last
state. It is committed in the same transaction as a compare-and-set on the run's current
state id, so when several processes sweep the same file at once exactly one of them marks
the run, and then it is published on the bus for every other consumer (the persistence
writer sees it again and, the event id being the state id, writes nothing twice). The
whole run tree is closed in that transaction: every task run of the flow run that is not
in a final state gets its own ``headwater.task-run.Crashed``.

A Crashed state is dated when the crash happened at the latest: just after the run's last
sign of life (its latest state or heartbeat), not when it was detected (the message says
when). States are ordered by when they happened, so a terminal state the run's own process
recorded after that moment, and delivered late (through an outbox, while a server was
down), still wins over the detector's guess.
"""

from __future__ import annotations

import datetime
import os
import socket
import sqlite3
import uuid
from typing import Any

import aiosqlite
import msgspec

from headwater.events.bus import EventBus
from headwater.events.schema import RESOURCE_ID, RESOURCE_NAME, RESOURCE_ROLE, Event
from headwater.ids import new_uuid
from headwater.storage.batch import write_rows
from headwater.storage.database import Database
from headwater.storage.rows import build_rows, format_timestamp, parse_timestamp

__all__ = [
    "crashed_event",
    "crashed_task_event",
    "last_sign_of_life",
    "mark_crashed_runs",
    "process_alive",
]

_ACTIVE_RUNS = (
    "SELECT id, name, flow_name, flow_version, parent_flow_run_id, state_id, state_type,"
    " state_name, state_message, state_timestamp, run_count, parameters, tags, pid, hostname,"
    " heartbeat FROM flow_runs WHERE state_type IN ('PENDING', 'RUNNING', 'CANCELLING')"
)
_CLAIM = (
    "UPDATE flow_runs SET state_id = ?, state_type = 'CRASHED', state_name = 'Crashed',"
    " state_message = ?, state_timestamp = ?, end_time = ? WHERE id = ? AND state_id = ?"
)
_OPEN_TASK_RUNS = (
    "SELECT id, name, task_key, task_name, flow_run_id, flow_name, state_id, state_type,"
    " state_name, state_message, state_timestamp, run_count, tags FROM task_runs"
    " WHERE flow_run_id = ? AND state_type NOT IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED')"
)
_AFTER = datetime.timedelta(microseconds=1)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (a zombie counts as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # "pid (comm) state ...": comm may hold spaces and ")", so split at the last ")".
            return stat.read().rpartition(b")")[2].split()[0] != b"Z"
    except (OSError, IndexError):
        return True  # no procfs (macOS): os.kill is all we can know


def _crashed(
    kind: str,
    row: dict[str, Any],
    at: datetime.datetime,
    message: str,
    related: list[dict[str, str]],
    summary: dict[str, Any],
) -> Event:
    """The ``headwater.<kind>.Crashed`` event following a stored run row's current state."""
    state_id = new_uuid()
    timestamp = at.isoformat()
    tags = msgspec.json.decode(row["tags"]) if row["tags"] else []
    related = [
        *related,
        *({RESOURCE_ID: f"headwater.tag.{tag}", RESOURCE_ROLE: "tag"} for tag in tags),
    ]
    return Event(
        occurred=at,
        event=f"headwater.{kind}.Crashed",
        resource={  # type: ignore[arg-type]
            RESOURCE_ID: f"headwater.{kind}.{row['id']}",
            RESOURCE_NAME: row["name"],
            "headwater.run-count": str(row["run_count"]),
            "headwater.state-message": message,
            "headwater.state-name": "Crashed",
            "headwater.state-timestamp": timestamp,
            "headwater.state-type": "CRASHED",
        },
        related=related,  # type: ignore[arg-type]
        payload={
            "intended": {"from": row["state_type"], "to": "CRASHED"},
            "initial_state": {
                "id": row["state_id"],
                "type": row["state_type"],
                "name": row["state_name"],
                "message": row["state_message"] or "",
                "timestamp": parse_timestamp(row["state_timestamp"]).isoformat(),
            },
            "validated_state": {
                "id": str(state_id),
                "type": "CRASHED",
                "name": "Crashed",
                "message": message,
                "timestamp": timestamp,
            },
            kind.replace("-", "_"): {**summary, "tags": tags, "run_count": row["run_count"]},
        },
        id=state_id,
        follows=uuid.UUID(row["state_id"]),
    )


def crashed_event(run: dict[str, Any], now: datetime.datetime, message: str) -> Event:
    """The ``headwater.flow-run.Crashed`` event for a stored run row (a pure function).

    Args:
        run: a ``flow_runs`` row as a mapping of column names.
        now: the time of the Crashed state.
        message: the Crashed state's message.
    """
    related = [
        {
            RESOURCE_ID: f"headwater.flow.{run['flow_name']}",
            RESOURCE_ROLE: "flow",
            RESOURCE_NAME: run["flow_name"],
        }
    ]
    if run["parent_flow_run_id"]:
        related.append(
            {
                RESOURCE_ID: f"headwater.flow-run.{run['parent_flow_run_id']}",
                RESOURCE_ROLE: "parent-flow-run",
            }
        )
    summary = {
        "id": run["id"],
        "name": run["name"],
        "flow_name": run["flow_name"],
        "flow_version": run["flow_version"],
        "parent_flow_run_id": run["parent_flow_run_id"],
        "parameters": msgspec.json.decode(run["parameters"]) if run["parameters"] else {},
        "pid": run["pid"],
        "hostname": run["hostname"],
    }
    return _crashed("flow-run", run, now, message, related, summary)


def crashed_task_event(
    task: dict[str, Any], flow_run: dict[str, Any], at: datetime.datetime, message: str
) -> Event:
    """The ``headwater.task-run.Crashed`` event closing an open task run of a crashed flow run."""
    flow_name = task["flow_name"] or flow_run["flow_name"]
    related = [
        {
            RESOURCE_ID: f"headwater.flow-run.{flow_run['id']}",
            RESOURCE_ROLE: "flow-run",
            RESOURCE_NAME: flow_run["name"],
        },
        {
            RESOURCE_ID: f"headwater.flow.{flow_name}",
            RESOURCE_ROLE: "flow",
            RESOURCE_NAME: flow_name,
        },
    ]
    if task["task_key"]:
        related.append(
            {
                RESOURCE_ID: f"headwater.task.{task['task_key']}",
                RESOURCE_ROLE: "task",
                RESOURCE_NAME: task["task_name"] or "",
            }
        )
    summary = {
        "id": task["id"],
        "name": task["name"],
        "task_key": task["task_key"],
        "task_name": task["task_name"],
        "flow_run_id": task["flow_run_id"],
    }
    return _crashed("task-run", task, at, message, related, summary)


def last_sign_of_life(run: dict[str, Any]) -> datetime.datetime:
    """The latest moment the run's process was seen alive (its state or its heartbeat)."""
    seen = parse_timestamp(run["state_timestamp"])
    if run.get("heartbeat"):
        seen = max(seen, parse_timestamp(run["heartbeat"]))
    return seen


def _crash_reason(
    run: dict[str, Any],
    hostname: str,
    now: datetime.datetime,
    stale_after: datetime.timedelta | None,
) -> str | None:
    pid, host = run["pid"], run["hostname"]
    if pid is None or host is None:
        return None  # not started by a process we can probe (e.g. created by a server)
    if host == hostname:
        if pid == os.getpid() or process_alive(pid):
            return None
        return (
            f"Flow run process {pid} on {host} exited without reporting a final state "
            "(killed, or the machine restarted)."
        )
    if stale_after is None or run["heartbeat"] is None:
        return None
    if now - parse_timestamp(run["heartbeat"]) < stale_after:
        return None
    return (
        f"Flow run process {pid} on {host} has not been heard from since {run['heartbeat']} "
        f"(more than {stale_after})."
    )


async def mark_crashed_runs(
    database: Database,
    bus: EventBus | None,
    *,
    now: datetime.datetime | None = None,
    hostname: str | None = None,
    stale_after: datetime.timedelta | None = None,
) -> list[Event]:
    """Mark every flow run whose process is gone as Crashed, with its open task runs.

    Args:
        database: the database to sweep.
        bus: where to publish the Crashed events after their commit (None: only store them).
        now: when the sweep runs (default: now); the Crashed states are dated just after
            each run's last sign of life.
        hostname: this machine's name (default: ``socket.gethostname()``).
        stale_after: also mark runs of other machines whose heartbeat is older than this.

    Returns:
        The Crashed events: each flow run's, then its task runs'.

    Raises:
        StorageError: the database cannot be read or written.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    hostname = hostname or socket.gethostname()
    async with database.read() as reader, reader.execute(_ACTIVE_RUNS) as cursor:
        columns = [column[0] for column in cursor.description]
        runs = [dict(zip(columns, row, strict=True)) for row in await cursor.fetchall()]
    crashed: list[Event] = []
    for run in runs:
        reason = _crash_reason(run, hostname, now, stale_after)
        if reason is None:
            continue
        at = last_sign_of_life(run) + _AFTER
        reason = f"{reason} Detected at {now.isoformat(timespec='seconds')}."
        event = crashed_event(run, at, reason)
        closed = await _claim(database, run, event, at, now)
        if closed is not None:
            crashed += [event, *closed]
    if bus is not None:
        for event in crashed:
            bus.publish(event)
    return crashed


async def _claim(
    database: Database,
    run: dict[str, Any],
    event: Event,
    at: datetime.datetime,
    now: datetime.datetime,
) -> list[Event] | None:
    """Mark the run Crashed unless its state moved on; close its open task runs with it.

    Returns:
        The task runs' Crashed events, or None when another process (or the run) was first.
    """
    timestamp = format_timestamp(at)
    message = event.payload["validated_state"]["message"]

    async def work(connection: aiosqlite.Connection) -> list[Event] | None:
        cursor: sqlite3.Cursor | Any = await connection.execute(
            _CLAIM, (str(event.id), message, timestamp, timestamp, run["id"], run["state_id"])
        )
        if cursor.rowcount != 1:
            return None  # another process marked it, or the run moved on meanwhile
        async with connection.execute(_OPEN_TASK_RUNS, (run["id"],)) as tasks:
            columns = [column[0] for column in tasks.description]
            open_tasks = [dict(zip(columns, row, strict=True)) for row in await tasks.fetchall()]
        closing = f"Its flow run crashed: {message}"
        closed = [
            crashed_task_event(
                task, run, max(at, parse_timestamp(task["state_timestamp"]) + _AFTER), closing
            )
            for task in open_tasks
        ]
        await write_rows(connection, build_rows([event, *closed], now))
        return closed

    return await database.write(work)
