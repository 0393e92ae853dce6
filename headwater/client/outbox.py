"""The outbox: an SQLite file that keeps events while the server cannot take them.

When ``HEADWATER_API_URL`` is set, events go to the server; while it is unreachable (down,
restarting, rejecting our credentials) they are appended here instead and sent, oldest
first, once it is back. The outbox is bounded by the disk, not by memory, so a long outage
neither loses events nor grows the process (Prefect's client queue grows without bound:
complaint #19). A row is deleted only after the server confirmed it. A row the server
keeps dropping the connection on (a *poison* event, which would otherwise block every later
one for good) is moved to the ``parked`` table and reported, so the rest move on.

Several processes on one machine share the file (``<HEADWATER_HOME>/outbox.db`` by default).
Each process *owns* the rows it appends and sends only its own, so the events of one run
reach the server in the order they were published. Rows of a process that is gone (it
exited while the server was down, or was killed) are *adopted* by the next process that
looks: a process releases its rows when it exits, and one that died is recognised by its
pid (same host) or by a heartbeat older than :data:`STALE_AFTER`.

Every call runs one short transaction in a worker thread, one at a time (a single writer
per process); ``synchronous=NORMAL`` in WAL mode makes a committed append survive the
process being killed (only an OS crash can undo the last commits).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.to_thread

from headwater.storage.sqlite import translate_error

__all__ = ["Outbox", "STALE_AFTER", "orphaned_owners", "outbox_path", "pid_alive"]

T = TypeVar("T")

STALE_AFTER = 120.0
"""Seconds without a heartbeat after which an owner on another host counts as gone."""

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS outbox ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT, data BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ix_outbox_owner ON outbox (owner, seq)",
    "CREATE TABLE IF NOT EXISTS owners ("
    " owner TEXT PRIMARY KEY, hostname TEXT NOT NULL, pid INTEGER NOT NULL,"
    " heartbeat REAL NOT NULL)",
    # events the server kept dropping the connection on: kept aside, never re-sent
    "CREATE TABLE IF NOT EXISTS parked ("
    " seq INTEGER PRIMARY KEY, owner TEXT, data BLOB NOT NULL, reason TEXT NOT NULL,"
    " parked REAL NOT NULL)",
)

OwnerRow = tuple[str, str, int, float]

_open_owners: set[str] = set()  # the owners this process has open (never "gone")


def outbox_path(home: Path, configured: Path | None) -> Path:
    """The outbox file: ``HEADWATER_API_OUTBOX_PATH``, else ``<home>/outbox.db``."""
    return configured if configured is not None else home / "outbox.db"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is someone else's
    except OSError:
        return True  # cannot tell: never take rows from a process that may be alive
    return True


def orphaned_owners(
    owners: Iterable[OwnerRow],
    *,
    ours: Collection[str],
    hostname: str,
    now: float,
    own_pid: int,
    alive: Callable[[int], bool] = pid_alive,
    stale_after: float = STALE_AFTER,
) -> list[str]:
    """The owners whose rows may be taken over: their process is gone.

    ``ours`` are the owners this process has open. Another owner on this host is gone when
    its pid no longer exists, or is ours (a container restarted with the same hostname reuses
    pids); one on another host (a shared home) when its heartbeat is older than
    ``stale_after`` seconds.
    """
    gone = []
    for owner, owner_host, pid, heartbeat in owners:
        if owner in ours:
            continue
        if owner_host == hostname:
            if pid == own_pid or not alive(pid):
                gone.append(owner)
        elif now - heartbeat > stale_after:
            gone.append(owner)
    return gone


class Outbox:
    """One process's handle on the outbox file; open it with :meth:`open`.

    Attributes:
        path: the SQLite file.
        owner: this process's owner token (rows it appended or adopted carry it).
    """

    def __init__(self, path: Path, connection: sqlite3.Connection, owner: str) -> None:
        self.path = path
        self.owner = owner
        self._connection: sqlite3.Connection | None = connection
        self._hostname = socket.gethostname()
        self._limiter = anyio.CapacityLimiter(1)

    @classmethod
    async def open(cls, path: Path, *, busy_timeout: float = 30.0) -> Outbox:
        """Open (creating if needed) the outbox and register this process as an owner.

        Raises:
            StorageError: the file cannot be created or opened; the message names it.
        """
        owner = uuid.uuid4().hex
        connection = await anyio.to_thread.run_sync(_connect, path, busy_timeout, owner)
        _open_owners.add(owner)
        return cls(path, connection, owner)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        connection = self._connection
        if connection is None:
            raise RuntimeError(f"the outbox {self.path} is closed")
        return await anyio.to_thread.run_sync(
            _transaction, connection, work, self.path, limiter=self._limiter
        )

    async def append(self, frames: Sequence[bytes]) -> None:
        """Append events (JSON, oldest first) and commit.

        Raises:
            StorageError: the write failed (disk full, read-only file...).
        """
        owner = self.owner
        rows = [(owner, frame) for frame in frames]
        await self._run(
            lambda db: db.executemany("INSERT INTO outbox (owner, data) VALUES (?, ?)", rows)
        )

    async def peek(self, max_items: int, max_bytes: int) -> list[tuple[int, bytes]]:
        """This process's oldest rows, ``(seq, data)``, at most ``max_items`` and about
        ``max_bytes`` (always at least one row when there is one)."""

        def read(db: sqlite3.Connection) -> list[tuple[int, bytes]]:
            cursor = db.execute(
                "SELECT seq, data FROM outbox WHERE owner = ? ORDER BY seq LIMIT ?",
                (self.owner, max_items),
            )
            rows: list[tuple[int, bytes]] = []
            size = 0
            for seq, data in cursor:
                rows.append((seq, bytes(data)))
                size += len(data)
                if size >= max_bytes:
                    break
            cursor.close()
            return rows

        return await self._run(read)

    async def remove(self, seqs: Sequence[int]) -> None:
        """Delete these rows (the server confirmed them)."""
        rows = [(seq,) for seq in seqs]
        await self._run(lambda db: db.executemany("DELETE FROM outbox WHERE seq = ?", rows))

    async def park(self, seq: int, reason: str) -> None:
        """Move row ``seq`` aside (table ``parked``): it is kept, but never sent again."""

        def park(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT OR REPLACE INTO parked (seq, owner, data, reason, parked)"
                " SELECT seq, owner, data, ?, ? FROM outbox WHERE seq = ?",
                (reason, time.time(), seq),
            )
            db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

        await self._run(park)

    async def heartbeat(self) -> None:
        """Tell other hosts sharing the file that this process is alive."""
        owner = self.owner
        await self._run(
            lambda db: db.execute(
                "UPDATE owners SET heartbeat = ? WHERE owner = ?", (time.time(), owner)
            )
        )

    async def pending(self) -> int:
        """How many rows this process owns."""
        return await self._run(
            lambda db: db.execute(
                "SELECT count(*) FROM outbox WHERE owner = ?", (self.owner,)
            ).fetchone()[0]
        )

    async def adopt(self) -> int:
        """Take over the rows of processes that are gone, and released rows; refresh our
        heartbeat. Returns how many rows were taken over."""
        owner, hostname = self.owner, self._hostname

        def adopt(db: sqlite3.Connection) -> int:
            now = time.time()
            db.execute("UPDATE owners SET heartbeat = ? WHERE owner = ?", (now, owner))
            gone = orphaned_owners(
                db.execute("SELECT owner, hostname, pid, heartbeat FROM owners").fetchall(),
                ours=_open_owners,
                hostname=hostname,
                now=now,
                own_pid=os.getpid(),
            )
            for dead in gone:
                db.execute("DELETE FROM owners WHERE owner = ?", (dead,))
            # Rows whose owner is not registered (released, or its owner row was removed).
            cursor = db.execute(
                "UPDATE outbox SET owner = ? WHERE owner IS NULL"
                " OR owner NOT IN (SELECT owner FROM owners)",
                (owner,),
            )
            return cursor.rowcount

        return await self._run(adopt)

    async def close(self) -> int:
        """Release this process's rows for others to send, and close.

        Returns:
            How many rows were left for another process (0 when everything was sent).
        """
        if self._connection is None:
            return 0
        owner = self.owner

        def release(db: sqlite3.Connection) -> int:
            db.execute("DELETE FROM owners WHERE owner = ?", (owner,))
            return db.execute("UPDATE outbox SET owner = NULL WHERE owner = ?", (owner,)).rowcount

        try:
            return await self._run(release)
        finally:
            _open_owners.discard(owner)
            connection, self._connection = self._connection, None
            if connection is not None:
                await anyio.to_thread.run_sync(connection.close, limiter=self._limiter)

    def __repr__(self) -> str:
        state = "closed" if self._connection is None else "open"
        return f"<Outbox {str(self.path)!r} {state}>"


def _connect(path: Path, busy_timeout: float, owner: str) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            str(path), timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
    except (OSError, sqlite3.Error) as exc:
        raise translate_error(exc, path) from exc
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        _transaction(connection, _create, path)
        _transaction(
            connection,
            lambda db: db.execute(
                "INSERT INTO owners (owner, hostname, pid, heartbeat) VALUES (?, ?, ?, ?)",
                (owner, socket.gethostname(), os.getpid(), time.time()),
            ),
            path,
        )
    except BaseException as exc:
        connection.close()
        if isinstance(exc, sqlite3.Error):
            raise translate_error(exc, path) from exc
        raise
    return connection


def _create(db: sqlite3.Connection) -> None:
    for statement in _SCHEMA:
        db.execute(statement)


def _transaction(
    connection: sqlite3.Connection, work: Callable[[sqlite3.Connection], T], path: Path
) -> T:
    """Run ``work`` in one ``BEGIN IMMEDIATE`` transaction (in a worker thread) and commit."""
    try:
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = work(connection)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return result
    except sqlite3.Error as exc:
        raise translate_error(exc, path) from exc


def _reset_after_fork() -> None:
    # The parent's open outboxes are not the child's; the parent is another owner.
    _open_owners.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
