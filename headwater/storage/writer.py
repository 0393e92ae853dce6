"""The persistence writer: the one task per process that turns bus events and run logs into rows.

It takes events from a lossless bus subscription as they come (a few hundred at a time, or
whatever arrived within ``batch_latency`` seconds), turns them into rows at once, and hands
the rows to a :class:`~headwater.storage.batch.BatchThread`, which commits everything built
so far each time it is free, with one statement per batch. Each batch is acknowledged to the
bus only after its commit, so ``bus.flush()`` returning means "committed", which is how a
flow run's terminal state is durable before the flow call returns.

Loss window on a hard kill (SIGKILL, power loss aside): events published less than
``batch_latency`` seconds (default 0.1 s, ``HEADWATER_DATABASE_BATCH_LATENCY``) before the
kill, plus those of at most two batches: the one being committed and the one waiting for
it, each at most ``batch_size`` events (default 10,000, ``HEADWATER_DATABASE_BATCH_SIZE``;
a full batch commits in about 0.1-0.2 s). Batches grow that large only while events arrive
faster than a commit takes; otherwise each holds what ``batch_latency`` gathered. Anything
older is committed. Interpreter exit and SIGTERM flush everything first (see
:mod:`headwater.storage.persistence`).

Run logs arrive from any thread through :meth:`PersistenceWriter.enqueue_log` into a
bounded buffer and are written by a second loop, on the database's own writer connection.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import aiosqlite
import anyio

from headwater.events.bus import Subscription
from headwater.events.schema import Event, EventSource
from headwater.exceptions import StorageError
from headwater.storage.batch import INSERT_BATCH, BatchThread, write_rows
from headwater.storage.database import Database
from headwater.storage.rows import BatchRows, LogRecord, build_rows, log_row

__all__ = ["PersistenceWriter", "write_rows"]

logger = logging.getLogger("headwater.storage")

_INSERT_LOGS = (
    "INSERT INTO logs (flow_run_id, task_run_id, name, level, message, timestamp)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)

# Events taken from the bus at a time: small enough that a compact record is turned into
# rows while it is young (before the garbage collector moves it to an older generation,
# whose collections then have more to scan), large enough to make taking cheap.
_CHUNK = 256
_LOG_WAIT_POLL = 0.25  # a thread waiting for log buffer room re-checks the writer this often
_LOG_WAIT_LIMIT = 10.0  # ...and gives up (dropping the record, counted) after this long


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


async def _insert_logs(connection: aiosqlite.Connection, rows: list[tuple[Any, ...]]) -> None:
    await connection.executemany(_INSERT_LOGS, rows)


class PersistenceWriter:
    """Writes events and run logs to one :class:`Database`, batched; acks after commit.

    Args:
        database: the open database (owned by the caller).
        batch_size: most events per transaction, and most events built and waiting for
            their transaction (beyond that the writer stops taking from the bus).
        batch_latency: longest wait, in seconds, for more events before taking those that
            came (part of the loss window, see the module docstring).
        max_log_length: log messages longer than this are truncated with a marker.
        log_buffer_size: bound of the run log buffer; a full buffer makes
            :meth:`enqueue_log` wait (backpressure), except on the writer's own thread.
        clock: returns the current UTC time (tests pass a fake one).

    Attributes:
        error: the last write failure, or None once a write succeeds again.
        lost_events: events that could not be written (after a write failure).
        lost_logs: log records that could not be written or buffered.
        committed_events: events committed so far.
    """

    def __init__(
        self,
        database: Database,
        *,
        batch_size: int = 10_000,
        batch_latency: float = 0.1,
        max_log_length: int = 100_000,
        log_buffer_size: int = 10_000,
        clock: Callable[[], datetime.datetime] = _utcnow,
        on_health: Callable[[StorageError | None], None] | None = None,
    ) -> None:
        self.database = database
        # told of every change between writing and failing (None: writes work again)
        self.on_health = on_health
        self.batch_size = batch_size
        self.batch_latency = batch_latency
        self.max_log_length = max_log_length
        self.log_buffer_size = log_buffer_size
        self.clock = clock
        self.error: StorageError | None = None
        self.lost_events = 0
        self.lost_logs = 0
        self.committed_events = 0
        self._logs: deque[tuple[Any, ...]] = deque()
        self._logs_room = threading.Condition()
        self._logs_loop: asyncio.AbstractEventLoop | None = None
        self._logs_thread: int | None = None
        self._logs_ready: asyncio.Event | None = None
        self._logs_pause: anyio.CancelScope | None = None
        self._stopping = False

    # -- events --------------------------------------------------------------------------

    async def write_events(self, items: Sequence[Event | EventSource]) -> None:
        """Commit ``items`` (events or compact records) in one transaction.

        Idempotent: writing the same events again changes nothing.

        Raises:
            StorageError: the transaction failed; nothing of it was written.
        """
        if items:
            await self._commit(build_rows(items, self.clock()))

    async def _commit(self, rows: BatchRows) -> None:
        if not rows.events:
            return
        await self.database.write_statement(INSERT_BATCH, rows.parameters())
        self.committed_events += len(rows.events)

    async def run(self, subscription: Subscription) -> None:
        """Consume ``subscription`` until it is closed or detached, then drain the log buffer.

        Events are taken from the bus as they come (a few hundred at a time, or whatever
        arrived within ``batch_latency``) and turned into rows at once, so the bus holds
        compact records only briefly; a :class:`~headwater.storage.batch.BatchThread`
        commits all the rows built so far each time it is free (SQLite working without the
        GIL while the next rows are built). At most ``batch_size`` events wait for it:
        beyond that the writer stops taking from the bus, whose bound then makes the
        publishers wait. Batches commit in order and each is acknowledged after its own
        commit. A batch that cannot be written is acknowledged too (and counted in
        :attr:`lost_events`) so that publishers never wait forever on a broken disk: the
        failure is logged once, with the file and the cause.
        """
        self._bind_logs()
        async with anyio.create_task_group() as group:
            group.start_soon(self._run_logs)
            try:
                batches = await BatchThread.open(
                    self.database.path,
                    self.database.busy_timeout,
                    partial(self._committed, subscription),
                )
                try:
                    limit = self.batch_size
                    while True:
                        await batches.wait_for_room(limit)
                        taken = await subscription.get_batch(
                            max_items=min(_CHUNK, limit - batches.pending),
                            max_latency=self.batch_latency,
                        )
                        if not taken:
                            break
                        # a lossless subscription never yields gap notices: every item
                        # is an Event or a compact record
                        batches.add(taken, self.clock())  # type: ignore[arg-type]
                        del taken  # the records are rows now; let them go
                finally:
                    await batches.aclose()
            finally:
                self._stopping = True
                if self._logs_pause is not None:
                    self._logs_pause.cancel()
                if self._logs_ready is not None:
                    self._logs_ready.set()

    def _committed(
        self, subscription: Subscription, delivered: int, events: int, error: StorageError | None
    ) -> None:
        if error is None:
            self.committed_events += events
            self._recovered()
        else:
            self._failed(error, events=events)
        if not subscription.closed:
            # acked either way so publishers never wait on a broken disk; a failed write makes
            # the flush covering it return False, so the flow call learns of it at once
            subscription.ack(delivered, failed=error is not None)

    def _failed(self, exc: StorageError, *, events: int = 0, logs: int = 0) -> None:
        if self.error is None:
            logger.error("could not write run history: %s; later failures are not logged", exc)
            if self.on_health is not None:
                self.on_health(exc)
        self.error = exc
        self.lost_events += events
        self.lost_logs += logs

    def _recovered(self) -> None:
        if self.error is not None:
            logger.warning(
                "run history writes work again (%s); %d events and %d log records were lost",
                self.database.path,
                self.lost_events,
                self.lost_logs,
            )
            self.error = None
            if self.on_health is not None:
                self.on_health(None)

    # -- logs ----------------------------------------------------------------------------

    def _bind_logs(self) -> None:
        self._logs_loop = asyncio.get_running_loop()
        self._logs_thread = threading.get_ident()
        self._logs_ready = asyncio.Event()
        if self._logs:
            self._logs_ready.set()

    def enqueue_log(self, record: LogRecord) -> None:
        """Queue one run log record for writing; thread-safe.

        Returns at once unless the buffer is full; then it waits for the writer to make
        room (up to 10 s, after which the record is counted in :attr:`lost_logs` and
        dropped). On the writer's own thread it never waits. The message is truncated to
        ``max_log_length`` characters with a marker; a record is never dropped for its size.
        """
        self.enqueue_log_row(log_row(record, self.max_log_length))

    def enqueue_log_row(self, row: tuple[Any, ...]) -> None:
        """Queue an already built ``logs`` row (see :func:`~headwater.storage.rows.log_row`)."""
        logs = self._logs
        if (
            len(logs) >= self.log_buffer_size
            and threading.get_ident() != self._logs_thread
            and not self._wait_for_room()
        ):
            self.lost_logs += 1
            return
        was_empty = not logs
        logs.append(row)
        if was_empty:
            self._wake_logs()

    def _wait_for_room(self) -> bool:
        deadline = time.monotonic() + _LOG_WAIT_LIMIT
        with self._logs_room:
            while len(self._logs) >= self.log_buffer_size:
                loop = self._logs_loop
                # Before the writer starts (loop None) it is worth waiting: it is coming.
                if self._stopping or (loop is not None and loop.is_closed()):
                    return False
                self._wake_logs()
                if time.monotonic() >= deadline:
                    return False
                self._logs_room.wait(_LOG_WAIT_POLL)
        return True

    def _wake_logs(self) -> None:
        loop, ready = self._logs_loop, self._logs_ready
        if loop is None or ready is None:
            return
        try:
            loop.call_soon_threadsafe(ready.set)
        except RuntimeError:
            pass  # the writer's loop is closed; records stay buffered for a flush_logs()

    async def flush_logs(self) -> None:
        """Write every buffered log record now (in batches of ``batch_size``)."""
        logs = self._logs
        while logs:
            rows: list[tuple[Any, ...]] = []
            while logs and len(rows) < self.batch_size:
                rows.append(logs.popleft())
            with self._logs_room:
                self._logs_room.notify_all()

            try:
                await self.database.write(partial(_insert_logs, rows=rows))
            except StorageError as exc:
                self._failed(exc, logs=len(rows))

    async def _run_logs(self) -> None:
        ready = self._logs_ready
        assert ready is not None
        while True:
            await ready.wait()
            ready.clear()
            if not self._stopping:
                # Gather more records; a stop cuts the wait short.
                with anyio.CancelScope() as self._logs_pause:
                    await anyio.sleep(self.batch_latency)
                self._logs_pause = None
            await self.flush_logs()
            if self._stopping:
                await self.flush_logs()
                return
