"""A blocking SQLite connection for short transactions from any thread.

Concurrency slots and artifacts are written by user code at the moment it asks (a slot
must be taken before the block runs; ``Artifact.get`` must see the artifact just created),
from sync code in any thread as often as from async code. Going through
:class:`~headwater.storage.database.Database` would cost a hop to an event loop plus one
aiosqlite thread hop per statement; one plain ``sqlite3`` connection per process and file,
guarded by a lock, answers a whole ``BEGIN IMMEDIATE`` transaction in tens of microseconds.
Async callers run these calls in a worker thread (``anyio.to_thread``), never on their loop.

The file is migrated (through :func:`~headwater.storage.database.open_database`, on a helper
thread with its own loop) the first time this process uses it. Every ``sqlite3`` error leaves
as a :class:`~headwater.exceptions.StorageError` naming the file.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio

from headwater.settings import Settings, get_settings
from headwater.storage.sqlite import database_path, translate_error

__all__ = ["SyncConnection", "get_sync_connection"]

_CACHED = 4  # files kept open; tests switch homes often, processes use one


class SyncConnection:
    """One ``sqlite3`` connection to a migrated headwater database, shared by threads.

    Attributes:
        path: the SQLite file.
    """

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            # check_same_thread=False: the lock, not the thread, serialises use.
            self._connection = sqlite3.connect(
                str(path), timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            self._connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            self._connection.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            raise translate_error(exc, path) from exc

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """The connection inside one ``BEGIN IMMEDIATE`` transaction, committed on success.

        The write lock is taken at the start (SQLite waits up to the busy timeout for another
        process), so the reads inside see exactly what the writes will change.

        Raises:
            StorageError: the file cannot be written.
        """
        with self._lock:
            connection = self._connection
            try:
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise translate_error(exc, self.path) from exc
            try:
                yield connection
                connection.execute("COMMIT")
            except BaseException as exc:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise translate_error(exc, self.path) from exc
                raise

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """The connection inside one read transaction (a consistent snapshot).

        Raises:
            StorageError: the file cannot be read.
        """
        with self._lock:
            connection = self._connection
            try:
                connection.execute("BEGIN")
                try:
                    yield connection
                finally:
                    if connection.in_transaction:
                        connection.execute("COMMIT")
            except sqlite3.Error as exc:
                raise translate_error(exc, self.path) from exc

    def close(self) -> None:
        with self._lock:
            self._connection.close()


_connections: OrderedDict[Path, SyncConnection] = OrderedDict()
_last: tuple[Settings, SyncConnection] | None = None
_lock = threading.Lock()


def get_sync_connection(settings: Settings | None = None) -> SyncConnection:
    """The connection to the database the settings name, migrated, opened on first use.

    Raises:
        StorageError: the file cannot be opened, migrated or is not a headwater database.
    """
    global _last
    settings = settings or get_settings()
    last = _last
    if last is not None and last[0] is settings:
        return last[1]
    path = database_path(settings)
    with _lock:
        connection = _connections.get(path)
        if connection is None:
            _migrate(path, settings)
            connection = SyncConnection(path, settings.database_busy_timeout)
            _connections[path] = connection
            while len(_connections) > _CACHED:
                _connections.popitem(last=False)[1].close()
        else:
            _connections.move_to_end(path)
        _last = (settings, connection)
        return connection


def _migrate(path: Path, settings: Settings) -> None:
    """Open the file once through the async storage layer, which creates and migrates it."""
    from headwater.storage.database import open_database

    failure: list[BaseException] = []

    async def main() -> None:
        database = await open_database(path, settings=settings)
        await database.close()

    def run() -> None:
        try:
            anyio.run(main)
        except BaseException as exc:
            failure.append(exc)

    # A thread of its own: the caller may be inside a running event loop.
    helper = threading.Thread(target=run, name="headwater-migrate", daemon=True)
    helper.start()
    helper.join()
    if failure:
        raise failure[0]


def _reset_after_fork() -> None:
    # The parent's connections must not be used by the child (SQLite forbids it).
    global _connections, _last, _lock
    _connections = OrderedDict()
    _last = None
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
