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

:class:`BatchThread` runs these statements for the persistence writer on a thread and
connection of its own, taking the next batch the moment one is done: SQLite never sits
idle while the writer's event loop (or the GIL) is busy elsewhere, and the thread needs
the GIL about once per batch.
"""

from __future__ import annotations

import asyncio
import datetime
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import anyio

from headwater.events.schema import Event, EventSource
from headwater.exceptions import StorageError
from headwater.storage.rows import FLOW_RUN_COLUMNS, TASK_RUN_COLUMNS, BatchRows, build_rows
from headwater.storage.sqlite import connection_pragmas, is_busy, translate_error

__all__ = ["BATCH_COLUMNS", "INSERT_BATCH", "BatchThread", "install", "write_rows"]

BATCH_COLUMNS = (
    "received",
    "base",
    "events",
    "data",
    "flows",
    "flow_runs",
    "task_runs",
    "heartbeats",
)
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


def _rows(array: str) -> str:
    # Each element once: json_each renders an element's text every time `value` is read,
    # and a row reads it once per column. OFFSET keeps SQLite from flattening this away.
    return f"(SELECT value FROM json_each({array}) LIMIT -1 OFFSET 0)"


# "WHERE 1": an upsert's SELECT needs a WHERE clause to be parsed.
_STATEMENTS = (
    # events: [id, occurred, event, resource_id, follows, offset, length, related], the
    # event's JSON at offset - base in data (substr counts from 1)
    "INSERT OR IGNORE INTO events (id, occurred, event, resource_id, follows, received, data)"
    f" SELECT {_columns(5)}, NEW.received,"
    " CAST(substr(NEW.data, json_extract(value, '$[5]') - NEW.base + 1,"
    " json_extract(value, '$[6]')) AS TEXT)"
    f" FROM {_rows('NEW.events')}",
    # related: [[related_id, role], ...] of each event
    "INSERT OR IGNORE INTO event_resources (resource_id, occurred, event_id, role)"
    " SELECT json_extract(related.value, '$[0]'), event.occurred, event.id,"
    " json_extract(related.value, '$[1]')"
    " FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS occurred,"
    " json_extract(value, '$[7]') AS related FROM json_each(NEW.events) LIMIT -1 OFFSET 0)"
    " AS event, json_each(event.related) AS related",
    "INSERT OR IGNORE INTO flows (id, name, created)"
    f" SELECT {_columns(3)} FROM json_each(NEW.flows)",
    f"INSERT INTO flow_runs ({FLOW_RUN_COLUMNS})"
    f" SELECT {_columns(_run_columns(FLOW_RUN_COLUMNS))} FROM {_rows('NEW.flow_runs')} WHERE 1"
    " ON CONFLICT (id) DO UPDATE SET name = excluded.name, flow_name = excluded.flow_name,"
    " flow_version = excluded.flow_version, parent_flow_run_id = excluded.parent_flow_run_id,"
    " parameters = excluded.parameters, tags = excluded.tags,"
    " pid = coalesce(excluded.pid, flow_runs.pid),"
    " hostname = coalesce(excluded.hostname, flow_runs.hostname),"
    " heartbeat = excluded.heartbeat,"
    + _STATE_UPDATE.format(table="flow_runs")
    + _NEWER.format(table="flow_runs"),
    f"INSERT INTO task_runs ({TASK_RUN_COLUMNS})"
    f" SELECT {_columns(_run_columns(TASK_RUN_COLUMNS))} FROM {_rows('NEW.task_runs')} WHERE 1"
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


_FIRST_RETRY_DELAY = 0.002
_LONGEST_RETRY_DELAY = 0.1

# what the thread reports after each batch: (items delivered, events, error or None)
Committed = Callable[[int, int, "StorageError | None"], None]


class BatchThread:
    """A thread with its own connection that commits the rows the event loop builds.

    The loop turns the events it takes from the bus into rows with :meth:`add`, a few
    hundred at a time; whenever the thread is free it takes all the rows added so far,
    joins them (:meth:`BatchRows.extend`) and stores them with one statement, then reports
    to ``committed`` on the loop. So a batch is whatever piled up while the previous one was
    written: the thread never waits for the loop between two batches, and a slower disk
    simply makes the batches bigger. Loop and thread share only a deque of built rows
    (appends and pops are atomic), never a lock held while building.

    Args:
        path: the database file (already migrated).
        busy_timeout: seconds a batch waits for another connection's write lock.
        committed: called on the loop after each batch, in order, with the number of bus
            items it held, its number of events, and the StorageError it failed with (or
            None once committed).
    """

    def __init__(self, path: Path, busy_timeout: float, committed: Committed) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._committed = committed
        self._loop = asyncio.get_running_loop()
        self._built: deque[tuple[BatchRows, int]] = deque()  # rows, bus items behind them
        self._offset = 1  # where the next rows' JSON starts (loop side)
        self._added = 0  # events added (written by the loop only)
        self._taken = 0  # events taken (written by the thread only)
        self._wake = threading.Condition()
        self._idle = False
        self._closing = False
        self._room = asyncio.Event()
        self._waiting_for_room = False
        self._connection: sqlite3.Connection | None = None
        self._thread = threading.Thread(target=self._serve, name="headwater-batches", daemon=True)

    @classmethod
    async def open(cls, path: Path, busy_timeout: float, committed: Committed) -> BatchThread:
        """Connect (off the event loop) and start the thread, from the loop to report to.

        Raises:
            StorageError: the file cannot be opened.
        """
        batches = cls(path, busy_timeout, committed)
        batches._connection = await anyio.to_thread.run_sync(batches._connect)
        batches._thread.start()
        return batches

    def _connect(self) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(
                str(self.path),
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path) from exc
        try:
            for pragma in connection_pragmas(self.busy_timeout):
                connection.execute(pragma)
            connection.execute(_VIEW)
            connection.execute(_TRIGGER)
        except sqlite3.Error as exc:
            connection.close()
            raise translate_error(exc, self.path) from exc
        return connection

    @property
    def pending(self) -> int:
        """Events added and not yet taken by the thread."""
        return self._added - self._taken

    def add(self, items: Sequence[Event | EventSource], now: datetime.datetime) -> None:
        """Turn ``items`` (delivered by the bus, in order) into rows for the next batch."""
        rows = build_rows(items, now, self._offset)
        self._offset = rows.offset
        self._added += len(rows)
        self._built.append((rows, len(items)))
        if self._idle:
            with self._wake:
                self._wake.notify()

    async def wait_for_room(self, limit: int) -> None:
        """Return once fewer than ``limit`` events wait for the thread."""
        while self.pending >= limit and self._thread.is_alive():
            self._room.clear()
            self._waiting_for_room = True
            try:
                if self.pending >= limit:
                    await self._room.wait()
            finally:
                self._waiting_for_room = False

    async def aclose(self) -> None:
        """Commit what was added, then stop the thread and close the connection."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        if self._thread.is_alive():
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._thread.join)
        elif self._connection is not None:
            self._connection.close()
            self._connection = None

    def _take(self) -> tuple[BatchRows, int] | None:
        built = self._built
        if not built:
            with self._wake:
                self._idle = True
                # checked again under the lock: add() notifies only an idle thread
                while not built and not self._closing:
                    self._wake.wait()
                self._idle = False
                if not built:
                    return None
        rows, delivered = built.popleft()
        while built:
            later, items = built.popleft()
            rows.extend(later)
            delivered += items
        self._taken += len(rows)
        if self._waiting_for_room:
            # (a wake-up costs a system call, during which the GIL goes elsewhere)
            self._call(self._room.set)
        return rows, delivered

    def _call(self, callback: Callable[..., Any], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more

    def _serve(self) -> None:
        connection = self._connection
        assert connection is not None
        try:
            while True:
                taken = self._take()
                if taken is None:
                    return
                rows, delivered = taken
                error: StorageError | None = None
                try:
                    self._write(connection, rows.parameters())
                except Exception as exc:  # reported to the loop, never lost with the thread
                    error = translate_error(exc, self.path)
                    error.__cause__ = exc
                self._call(self._committed, delivered, len(rows), error)
        finally:
            connection.close()
            self._connection = None

    def _write(self, connection: sqlite3.Connection, parameters: Sequence[Any]) -> None:
        # Retried while another connection holds the lock (beyond SQLite's own busy
        # timeout, for the cases it does not cover), as Database.write does.
        deadline = time.monotonic() + self.busy_timeout
        delay = _FIRST_RETRY_DELAY
        while True:
            try:
                connection.execute(INSERT_BATCH, parameters)
                return
            except sqlite3.Error as exc:
                if is_busy(exc) and time.monotonic() < deadline:
                    time.sleep(delay)
                    delay = min(delay * 2, _LONGEST_RETRY_DELAY)
                    continue
                raise
