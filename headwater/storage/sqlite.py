"""SQLite connections: where the file is, how a connection is set up, what its errors mean.

This is the adapter boundary for ``sqlite3``: every sqlite error that leaves the storage
package has been translated here into a :class:`~headwater.exceptions.StorageError` that
names the file and the cause in words (httpx's ``map_exceptions`` pattern).

Connections are :mod:`aiosqlite` connections: each runs SQLite in its own thread, so
no query blocks the event loop. Every connection uses WAL journaling (readers never
block the writer and the writer never blocks readers), ``synchronous=NORMAL`` (a commit
survives the process being killed; only an OS crash or power loss may undo the last
commits) and a busy timeout, so that several processes can share one file.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

import aiosqlite
import anyio

from headwater.exceptions import (
    DatabaseCorruptError,
    DatabaseUnavailableError,
    StorageError,
)
from headwater.settings import Settings

__all__ = [
    "connect",
    "connection_pragmas",
    "database_path",
    "is_busy",
    "translate_error",
]

_SCHEMES = ("sqlite:///", "sqlite+aiosqlite:///")


def database_path(settings: Settings) -> Path:
    """The SQLite file these settings point at.

    ``HEADWATER_DATABASE_URL`` may be ``sqlite:///relative/path.db`` or
    ``sqlite:////absolute/path.db`` (``sqlite+aiosqlite://`` is accepted too, as Prefect
    writes it); when unset, the file is ``<HEADWATER_HOME>/headwater.db``.

    Raises:
        DatabaseUnavailableError: the URL is not a SQLite URL.
    """
    url = settings.database_url
    if not url:
        return settings.home / "headwater.db"
    for scheme in _SCHEMES:
        if url.startswith(scheme):
            return Path(url[len(scheme) :]).expanduser()
    raise DatabaseUnavailableError(
        url,
        "only SQLite URLs (sqlite:///path/to/file.db) are supported by this version of headwater",
    )


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` means another connection holds the lock (worth retrying)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    name = getattr(exc, "sqlite_errorname", None)
    if name is not None:
        return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))
    message = str(exc)
    return "database is locked" in message or "database table is locked" in message


def _directory_problem(path: Path) -> str | None:
    directory = path.parent
    if not directory.exists():
        return f"the directory {directory} does not exist"
    if not os.access(directory, os.W_OK | os.X_OK):
        return (
            f"the directory {directory} is not writable "
            "(SQLite needs to create -wal and -shm files next to the database)"
        )
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return "the file is not readable and writable by this user"
    return None


def translate_error(exc: BaseException, path: Path | str) -> StorageError:
    """Turn a ``sqlite3`` or OS error about ``path`` into one readable StorageError.

    The result names the file and says what is wrong in words a user can act on; the
    original exception should be chained (``raise ... from exc``).
    """
    if isinstance(exc, StorageError):
        return exc
    where = str(path)
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC:
            return DatabaseUnavailableError(where, "the disk is full")
        reason = exc.strerror or str(exc)
        return DatabaseUnavailableError(where, f"cannot create or open the file ({reason})")
    name = getattr(exc, "sqlite_errorname", "") or ""
    message = str(exc)
    lowered = message.lower()
    if name.startswith("SQLITE_NOTADB") or "file is not a database" in lowered:
        return DatabaseCorruptError(where, "the file is not a SQLite database")
    if name.startswith("SQLITE_CORRUPT") or "malformed" in lowered:
        if where != ":memory:" and _checks_ok(Path(where)):
            # A failed or short read/write (a full or failing disk, a file size limit, a
            # network filesystem) looks like damage to SQLite; the file itself is fine.
            return DatabaseUnavailableError(
                where, f"I/O error: a read or write failed, the file itself checks ok ({message})"
            )
        return DatabaseCorruptError(where, f"the database is damaged ({message})")
    if name.startswith("SQLITE_FULL") or "disk is full" in lowered:
        return DatabaseUnavailableError(where, "the disk is full")
    if name.startswith("SQLITE_READONLY") or "readonly" in lowered:
        problem = _directory_problem(Path(where)) if where != ":memory:" else None
        return DatabaseUnavailableError(where, f"the database is read-only ({problem or message})")
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in lowered:
        problem = _directory_problem(Path(where))
        return DatabaseUnavailableError(where, f"cannot open the file ({problem or message})")
    if is_busy(exc):
        return DatabaseUnavailableError(
            where,
            "another process kept the database locked for longer than the busy timeout "
            "(HEADWATER_DATABASE_BUSY_TIMEOUT)",
        )
    if name.startswith("SQLITE_IOERR") or "disk i/o error" in lowered:
        return DatabaseUnavailableError(where, f"I/O error ({message})")
    return DatabaseUnavailableError(where, f"{type(exc).__name__}: {message}")


def _checks_ok(path: Path) -> bool:
    """Whether SQLite's quick check passes on ``path`` (a second opinion on "damaged")."""
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.Error:
        return False
    try:
        return connection.execute("PRAGMA quick_check").fetchone() == ("ok",)
    except sqlite3.Error:
        return False
    finally:
        connection.close()


def connection_pragmas(busy_timeout: float) -> list[str]:
    """How every headwater connection is set up (see the module docstring)."""
    return [
        f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}",
        "PRAGMA synchronous = NORMAL",
        "PRAGMA temp_store = MEMORY",
        "PRAGMA cache_size = -16000",
    ]


async def connect(
    path: Path, *, busy_timeout: float, query_only: bool = False
) -> aiosqlite.Connection:
    """Open a connection to ``path`` (created if missing, with its directory) and set it up.

    ``query_only`` connections refuse writes; they are the readers.

    The connection is in autocommit mode (``isolation_level=None``): callers open their
    own transactions, ``BEGIN IMMEDIATE`` for writes, so that lock waits happen at the start
    of a transaction, where the busy timeout applies, rather than as a failed upgrade.

    Raises:
        StorageError: the file cannot be opened; the message names it and the cause.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise translate_error(exc, path) from exc
    try:
        # Shielded: a connection opened but not handed back could never be closed.
        with anyio.CancelScope(shield=True):
            connection = await aiosqlite.connect(
                str(path), timeout=busy_timeout, isolation_level=None
            )
    except sqlite3.Error as exc:
        raise translate_error(exc, path) from exc
    try:
        for pragma in connection_pragmas(busy_timeout):
            await connection.execute(pragma)
        if query_only:
            await connection.execute("PRAGMA query_only = 1")
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await connection.close()
        if isinstance(exc, sqlite3.Error):
            raise translate_error(exc, path) from exc
        raise
    return connection
