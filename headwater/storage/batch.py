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

:class:`BatchThread` runs these statements for the persistence writer, on a thread and
connection of its own, with the next batch always ready to bind when one is done: SQLite
does not wait for the writer's event loop (nor for the GIL, beyond binding) between two
batches.
"""

from __future__ import annotations

import asyncio
import datetime
import queue
import sqlite3
import threading
import time
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
    " flow_version = excluded.flow_version,"
    " parent_flow_run_id = coalesce(excluded.parent_flow_run_id, flow_runs.parent_flow_run_id),"
    " parent_task_run_id = coalesce(excluded.parent_task_run_id, flow_runs.parent_task_run_id),"
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
# a batch ready for the thread: (statement parameters, or why there are none; bus items;
# events)
_Sealed = tuple["Sequence[Any] | Exception", int, int]


class BatchThread:
    """A thread with its own connection that commits the rows the event loop builds.

    The loop turns the events it takes from the bus into rows with :meth:`add`, a few
    hundred at a time. Rows wait in two places: one *sealed* batch, its parameters ready to
    bind, and the rows built since it was sealed. When the thread finishes a batch it takes
    the sealed one and starts on it at once; the loop, at its next :meth:`add`, seals
    everything built meanwhile. So a batch is what piled up while the previous one was
    written: SQLite never waits for the loop between two batches, a slower disk simply
    makes the batches bigger, and the Python work of joining rows and encoding parameters
    stays on the loop rather than on the thread, which needs the GIL only to bind a batch
    and to report it. (When no rows come to trigger a seal, the thread seals the rows left
    itself.)

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
        self._offset = 1  # where the next rows' JSON starts (loop side only)
        # guarded by _lock: rows built and not sealed, and the sealed batch
        self._lock = threading.Condition(threading.Lock())
        self._built: list[tuple[BatchRows, int]] = []  # rows, bus items behind them
        self._waiting = 0  # events in _built
        self._sealed: _Sealed | None = None
        self._idle = False
        self._closing = False
        self._room = asyncio.Event()
        self._waiting_for_room = False
        self._connection: sqlite3.Connection | None = None
        self._thread = threading.Thread(target=self._serve, name="headwater-batches", daemon=True)
        self._loop_thread = threading.get_ident()
        self._reports: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._reporter = threading.Thread(
            target=self._report, name="headwater-batch-reports", daemon=True
        )

    @classmethod
    async def open(cls, path: Path, busy_timeout: float, committed: Committed) -> BatchThread:
        """Connect (off the event loop) and start the thread, from the loop to report to.

        Raises:
            StorageError: the file cannot be opened.
        """
        batches = cls(path, busy_timeout, committed)
        batches._connection = await anyio.to_thread.run_sync(batches._connect)
        batches._reporter.start()
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
        """Events built and not yet sealed into a batch."""
        return self._waiting

    def add(self, items: Sequence[Event | EventSource], now: datetime.datetime) -> None:
        """Turn ``items`` (delivered by the bus, in order) into rows for the next batch."""
        rows = build_rows(items, now, self._offset)
        self._offset = rows.offset
        with self._lock:
            self._built.append((rows, len(items)))
            self._waiting += len(rows)
            if self._sealed is None:
                # the thread took the last sealed batch (or has none): this one is next
                self._seal()
                if self._idle:
                    self._lock.notify()

    def _seal(self) -> None:
        # (with _lock held)
        built = self._built
        if not built:
            return
        rows, delivered = built[0]
        for later, items in built[1:]:
            rows.extend(later)
            delivered += items
        self._built = []
        self._waiting = 0
        parameters: Sequence[Any] | Exception
        try:
            parameters = rows.parameters()
        except Exception as exc:  # written off as a failed batch, reported in order
            parameters = exc
        self._sealed = (parameters, delivered, len(rows))
        if self._waiting_for_room:
            # (a wake-up costs a system call, during which the GIL goes elsewhere)
            self._call(self._room.set)

    async def wait_for_room(self, limit: int) -> None:
        """Return once fewer than ``limit`` built events wait to be sealed."""
        while self._waiting >= limit and self._thread.is_alive():
            with self._lock:
                if self._sealed is None:
                    self._seal()
                    continue
            self._room.clear()
            self._waiting_for_room = True
            try:
                # woken when the thread takes the sealed batch (or seals these rows itself)
                if self._waiting >= limit and self._sealed is not None:
                    await self._room.wait()
            finally:
                self._waiting_for_room = False

    async def aclose(self) -> None:
        """Commit what was added, then stop the thread and close the connection."""
        with self._lock:
            self._closing = True
            self._lock.notify()
        with anyio.CancelScope(shield=True):
            if self._thread.is_alive():
                await anyio.to_thread.run_sync(self._thread.join)
            elif self._connection is not None:
                self._connection.close()
                self._connection = None
            if self._reporter.is_alive():
                self._reports.put(None)  # after every report of the thread
                await anyio.to_thread.run_sync(self._reporter.join)

    def _take(self) -> _Sealed | None:
        with self._lock:
            if self._sealed is None:
                self._seal()  # rows nobody sealed: no add() came after them
            while self._sealed is None:
                if self._closing:
                    return None
                self._idle = True
                self._lock.wait()
                self._idle = False
                if self._sealed is None:
                    self._seal()
            sealed, self._sealed = self._sealed, None
        if self._waiting_for_room:
            self._call(self._room.set)  # the loop may seal what it built meanwhile
        return sealed

    def _call(self, callback: Callable[..., Any], *args: Any) -> None:
        if threading.get_ident() == self._loop_thread:
            callback(*args)
        else:
            # Waking the loop is a system call, during which the GIL would go elsewhere
            # and the thread then wait for it again: another thread does that.
            self._reports.put((callback, args))

    def _report(self) -> None:
        while True:
            item = self._reports.get()
            if item is None:
                return
            callback, args = item
            try:
                self._loop.call_soon_threadsafe(callback, *args)
            except RuntimeError:
                pass  # the loop is closed: nobody is waiting any more

    def _serve(self) -> None:
        connection = self._connection
        assert connection is not None
        try:
            while True:
                sealed = self._take()
                if sealed is None:
                    return
                parameters, delivered, events = sealed
                error: StorageError | None = None
                try:
                    if isinstance(parameters, Exception):
                        raise parameters
                    self._write(connection, parameters)
                except Exception as exc:  # reported to the loop, never lost with the thread
                    error = translate_error(exc, self.path)
                    error.__cause__ = exc
                self._call(self._committed, delivered, events, error)
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
