"""An open headwater database: one writer connection, one reader connection.

SQLite allows one writer at a time per file, so a :class:`Database` keeps a single writer
connection and funnels its writes through :meth:`Database.write`: one short
``BEGIN IMMEDIATE`` transaction at a time, retried with backoff while another connection
holds the lock (on top of SQLite's own busy timeout). Readers use their own connection, so
a slow query never delays the writer (WAL mode lets both proceed at once). The persistence
writer commits its event batches on a connection of its own
(:class:`~headwater.storage.batch.BatchThread`), which takes turns with this one through
SQLite's lock, as the writers of other processes do.

A :class:`Database` belongs to the event loop that opened it; the persistence service opens
one on headwater's service loop, and a CLI or a test opens its own.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import anyio

from headwater.settings import Settings, get_settings
from headwater.storage import batch
from headwater.storage.migrations import migrate
from headwater.storage.sqlite import connect, database_path, is_busy, translate_error

__all__ = ["Database", "open_database"]

T = TypeVar("T")

_FIRST_RETRY_DELAY = 0.002
_LONGEST_RETRY_DELAY = 0.1


class Database:
    """An open database file; use :func:`open_database` (or ``await Database.open(...)``).

    Attributes:
        path: the SQLite file.
        busy_timeout: seconds a write waits for another process's lock before failing.
    """

    def __init__(
        self,
        path: Path,
        writer: aiosqlite.Connection,
        *,
        busy_timeout: float,
    ) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._writer = writer
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = anyio.Lock()
        self._read_lock = anyio.Lock()
        self._closed = False

    @classmethod
    async def open(
        cls,
        path: Path | str | None = None,
        *,
        settings: Settings | None = None,
    ) -> Database:
        """Open (creating if needed) and migrate the database.

        Args:
            path: the SQLite file; by default the one the settings name
                (``HEADWATER_DATABASE_URL`` or ``<HEADWATER_HOME>/headwater.db``).
            settings: settings to use instead of the current ones.

        Raises:
            StorageError: the file cannot be opened, is not a headwater database, or was
                written by a newer headwater; the message names the file and the cause.
        """
        settings = settings or get_settings()
        target = Path(path) if path is not None else database_path(settings)
        busy_timeout = settings.database_busy_timeout
        writer = await connect(target, busy_timeout=busy_timeout)
        try:
            await migrate(writer, target)
            await batch.install(writer)
        except sqlite3.Error as exc:
            with anyio.CancelScope(shield=True):
                await writer.close()
            raise translate_error(exc, target) from exc
        except BaseException:
            with anyio.CancelScope(shield=True):
                await writer.close()
            raise
        return cls(target, writer, busy_timeout=busy_timeout)

    async def close(self) -> None:
        """Close both connections; idempotent."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            async with self._write_lock:
                await self._writer.close()
            async with self._read_lock:
                if self._reader is not None:
                    await self._reader.close()
                    self._reader = None

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def write(self, work: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run ``work`` in one write transaction and commit it; retry while the file is locked.

        ``work`` may run more than once (after a lock conflict the transaction is rolled back
        and started again), so it must only issue statements, not keep state between runs.
        It returns once the transaction is committed.

        Raises:
            StorageError: the write failed for a reason other than a short lock conflict.
        """
        async with self._write_lock:
            deadline = time.monotonic() + self.busy_timeout
            delay = _FIRST_RETRY_DELAY
            connection = self._writer
            while True:
                try:
                    await connection.execute("BEGIN IMMEDIATE")
                    try:
                        result = await work(connection)
                    except BaseException:
                        with anyio.CancelScope(shield=True):
                            if connection.in_transaction:
                                await connection.execute("ROLLBACK")
                        raise
                    # Shielded: a COMMIT cancelled while SQLite runs it would leave us not
                    # knowing whether it happened, and a ROLLBACK after it fails.
                    with anyio.CancelScope(shield=True):
                        await connection.execute("COMMIT")
                    return result
                except sqlite3.Error as exc:
                    if is_busy(exc) and time.monotonic() < deadline:
                        await anyio.sleep(delay)
                        delay = min(delay * 2, _LONGEST_RETRY_DELAY)
                        continue
                    raise translate_error(exc, self.path) from exc

    async def write_statement(self, sql: str, parameters: Sequence[Any] = ()) -> None:
        """Run one statement as a transaction of its own; retry while the file is locked.

        The cheapest write: a single call into SQLite (no ``BEGIN``/``COMMIT`` round
        trips), which takes the write lock when it starts and commits when it ends, so it
        is all or nothing. The persistence writer stores a whole batch this way (see
        :mod:`headwater.storage.batch`).

        Raises:
            StorageError: the write failed for a reason other than a short lock conflict.
        """
        async with self._write_lock:
            deadline = time.monotonic() + self.busy_timeout
            delay = _FIRST_RETRY_DELAY
            while True:
                try:
                    await self._writer.execute(sql, parameters)
                    return
                except sqlite3.Error as exc:
                    if is_busy(exc) and time.monotonic() < deadline:
                        await anyio.sleep(delay)
                        delay = min(delay * 2, _LONGEST_RETRY_DELAY)
                        continue
                    raise translate_error(exc, self.path) from exc

    @asynccontextmanager
    async def read(self) -> AsyncIterator[aiosqlite.Connection]:
        """A reader connection holding one read transaction (a consistent snapshot).

        Raises:
            StorageError: the file cannot be read.
        """
        async with self._read_lock:
            try:
                if self._reader is None:
                    if self._closed:
                        raise RuntimeError(f"the database {self.path} is closed")
                    self._reader = await connect(
                        self.path, busy_timeout=self.busy_timeout, query_only=True
                    )
                reader = self._reader
                await reader.execute("BEGIN")
            except sqlite3.Error as exc:
                raise translate_error(exc, self.path) from exc
            try:
                yield reader
            except sqlite3.Error as exc:
                raise translate_error(exc, self.path) from exc
            finally:
                with anyio.CancelScope(shield=True):
                    if reader.in_transaction:
                        await reader.execute("COMMIT")


async def open_database(
    path: Path | str | None = None, *, settings: Settings | None = None
) -> Database:
    """Open and migrate a headwater database; see :meth:`Database.open`.

    Use as ``async with await open_database(path) as db: ...`` or close it yourself.
    """
    return await Database.open(path, settings=settings)
