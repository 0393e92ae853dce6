"""Writing a batch of rows with one SQL statement.

The writer connection gets a temporary view, ``headwater_batch``, whose ``INSTEAD OF
INSERT`` trigger stores a whole :class:`~headwater.storage.rows.BatchRows`: events, their
related resources, flows, flow runs, task runs and heartbeats. The batch is bound as a few
JSON arrays and one blob, so inserting one row into the view writes everything, in one
call into SQLite.

Why one statement: Python's ``sqlite3`` releases the GIL while SQLite works, but takes it
back between rows of an ``executemany`` and between statements. When the engine keeps the
GIL busy (a flow gathering thousands of tasks), each of those hand-overs may wait for
Python's switch interval (5 ms), so a batch written row by row crawls, and the engine then
waits for the lossless buffer. Here the writer thread needs the GIL only to bind the
parameters and to hand the result back; SQLite parses the arrays and updates every table
while the engine runs on.

The view and trigger live in the connection's ``temp`` schema: nothing is stored in the
file, other processes (and other versions) are unaffected, and :func:`install` recreates
them on every writer connection. Alone, the statement is its own transaction (taking the
write lock when it starts, like ``BEGIN IMMEDIATE``); inside a transaction it is part of it.
"""

from __future__ import annotations

import aiosqlite

from headwater.storage.rows import FLOW_RUN_COLUMNS, TASK_RUN_COLUMNS, BatchRows

__all__ = ["BATCH_COLUMNS", "INSERT_BATCH", "install", "write_rows"]

BATCH_COLUMNS = ("received", "events", "data", "flows", "flow_runs", "task_runs", "heartbeats")
"""The view's columns: the values of :meth:`BatchRows.parameters`, in order."""

INSERT_BATCH = (
    f"INSERT INTO temp.headwater_batch ({', '.join(BATCH_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(BATCH_COLUMNS))})"
)


def _columns(count: int, source: str = "value") -> str:
    # json_extract rather than ->>, which needs SQLite 3.38
    return ", ".join(f"json_extract({source}, '$[{index}]')" for index in range(count))


def _run_columns(columns: str) -> int:
    return len(columns.split(","))


# A run row takes a batch's state only if it is not older than the stored one, so a
# re-delivered or late event never moves a run backwards; ties on timestamp go to the
# time-ordered state id.
_STATE_UPDATE = """
    state_id = excluded.state_id, state_type = excluded.state_type,
    state_name = excluded.state_name, state_message = excluded.state_message,
    state_timestamp = excluded.state_timestamp,
    run_count = max({table}.run_count, excluded.run_count),
    start_time = coalesce({table}.start_time, excluded.start_time),
    end_time = excluded.end_time,
    created = min({table}.created, excluded.created)
"""
_NEWER = (
    " WHERE (excluded.state_timestamp, excluded.state_id)"
    " >= ({table}.state_timestamp, {table}.state_id)"
)

# "WHERE 1" after each json_each: an upsert's SELECT needs a WHERE clause to be parsed.
_STATEMENTS = (
    # events: [id, occurred, event, resource_id, follows, offset, length, related]
    "INSERT OR IGNORE INTO events (id, occurred, event, resource_id, follows, received, data)"
    f" SELECT {_columns(5)}, NEW.received,"
    " CAST(substr(NEW.data, json_extract(value, '$[5]'), json_extract(value, '$[6]')) AS TEXT)"
    " FROM json_each(NEW.events)",
    # related: [[related_id, role], ...] of each event
    "INSERT OR IGNORE INTO event_resources (resource_id, occurred, event_id, role)"
    " SELECT json_extract(related.value, '$[0]'), json_extract(event.value, '$[1]'),"
    " json_extract(event.value, '$[0]'), json_extract(related.value, '$[1]')"
    " FROM json_each(NEW.events) AS event, json_each(event.value, '$[7]') AS related",
    "INSERT OR IGNORE INTO flows (id, name, created)"
    f" SELECT {_columns(3)} FROM json_each(NEW.flows)",
    f"INSERT INTO flow_runs ({FLOW_RUN_COLUMNS})"
    f" SELECT {_columns(_run_columns(FLOW_RUN_COLUMNS))} FROM json_each(NEW.flow_runs) WHERE 1"
    " ON CONFLICT (id) DO UPDATE SET name = excluded.name, flow_name = excluded.flow_name,"
    " flow_version = excluded.flow_version, parent_flow_run_id = excluded.parent_flow_run_id,"
    " parameters = excluded.parameters, tags = excluded.tags,"
    " pid = coalesce(excluded.pid, flow_runs.pid),"
    " hostname = coalesce(excluded.hostname, flow_runs.hostname),"
    " heartbeat = excluded.heartbeat,"
    + _STATE_UPDATE.format(table="flow_runs")
    + _NEWER.format(table="flow_runs"),
    f"INSERT INTO task_runs ({TASK_RUN_COLUMNS})"
    f" SELECT {_columns(_run_columns(TASK_RUN_COLUMNS))} FROM json_each(NEW.task_runs) WHERE 1"
    " ON CONFLICT (id) DO UPDATE SET name = excluded.name, task_key = excluded.task_key,"
    " task_name = excluded.task_name, flow_run_id = excluded.flow_run_id,"
    " tags = excluded.tags, flow_name = coalesce(excluded.flow_name, task_runs.flow_name),"
    + _STATE_UPDATE.format(table="task_runs")
    + _NEWER.format(table="task_runs"),
    "UPDATE flow_runs SET heartbeat = NEW.received"
    " WHERE id IN (SELECT value FROM json_each(NEW.heartbeats))",
)

_VIEW = (
    f"CREATE TEMP VIEW IF NOT EXISTS headwater_batch ({', '.join(BATCH_COLUMNS)}) AS"
    f" SELECT {', '.join(['NULL'] * len(BATCH_COLUMNS))} WHERE 0"
)
_TRIGGER = (
    "CREATE TEMP TRIGGER IF NOT EXISTS headwater_batch_insert"
    " INSTEAD OF INSERT ON headwater_batch BEGIN " + "; ".join(_STATEMENTS) + "; END"
)


async def install(connection: aiosqlite.Connection) -> None:
    """Create the batch view and its trigger on ``connection`` (after migrating)."""
    await connection.execute(_VIEW)
    await connection.execute(_TRIGGER)


async def write_rows(connection: aiosqlite.Connection, rows: BatchRows) -> None:
    """Store ``rows`` with one statement (its own transaction, or part of the caller's)."""
    await connection.execute(INSERT_BATCH, rows.parameters())
