"""Bring a database file to the current schema when it is opened.

An empty file gets every migration; an older file is upgraded in place, in one
transaction (all steps or none); a file written by a newer headwater is refused, untouched,
with :class:`~headwater.exceptions.SchemaVersionError`; a SQLite file that belongs to
another application is refused with :class:`~headwater.exceptions.DatabaseCorruptError`.

Several processes may open the same file at once: the version is read again inside the
write transaction, so only the first one migrates and the others see the result.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import aiosqlite
import anyio

from headwater.exceptions import DatabaseCorruptError, SchemaVersionError
from headwater.storage.schema import APPLICATION_ID, MIGRATIONS, Migration
from headwater.storage.sqlite import translate_error

__all__ = ["PAGE_SIZE", "migrate", "schema_version"]

PAGE_SIZE = 32768
"""Page size of a new database file, in bytes (an existing file keeps its own)."""

_FOREIGN = "the file is a SQLite database of another application, not a headwater database"


async def _scalar(connection: aiosqlite.Connection, sql: str) -> int:
    async with connection.execute(sql) as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row is not None else 0


async def schema_version(connection: aiosqlite.Connection) -> int:
    """The schema version recorded in the file (0 for a new, empty file)."""
    return await _scalar(connection, "PRAGMA user_version")


async def migrate(
    connection: aiosqlite.Connection,
    path: Path,
    migrations: Sequence[Migration] = MIGRATIONS,
    *,
    target: int | None = None,
) -> int:
    """Apply the migrations the file lacks, up to ``target`` (the latest by default).

    Also switches the file to WAL journaling, which SQLite remembers in the file.

    Args:
        connection: a connection in autocommit mode (see :func:`~.sqlite.connect`).
        path: the file, for error messages.
        migrations: the ordered migrations (tests pass their own).
        target: stop at this version; used by tests to build an older file.

    Returns:
        The schema version of the file afterwards.

    Raises:
        SchemaVersionError: the file's version is newer than the newest migration.
        DatabaseCorruptError: the file is not a SQLite database, or not a headwater one.
        DatabaseUnavailableError: the file cannot be read or written.
    """
    latest = migrations[-1].version if migrations else 0
    goal = latest if target is None else target
    try:
        # journal_mode cannot change inside a transaction, and needs no lock when it is
        # already WAL; this is also the first statement that reads the file, so a file
        # that is not a database fails here.
        # Only a new, empty file takes the page size (before anything is written to it):
        # rows of whole events are large, and 32 KiB pages make the writer's B-tree and
        # WAL work per event about a third cheaper than the default 4 KiB.
        await connection.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        await connection.execute("PRAGMA journal_mode = WAL")
        found = await schema_version(connection)
        if found >= goal:
            _check(path, found, latest, await _scalar(connection, "PRAGMA application_id"))
            return found
        await connection.execute("BEGIN IMMEDIATE")
        try:
            # Read again under the write lock: another process may have migrated meanwhile,
            # and only inside one transaction do the version and the tables agree.
            found = await schema_version(connection)
            _check(path, found, latest, await _scalar(connection, "PRAGMA application_id"))
            if found == 0 and await _scalar(
                connection, "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
            ):
                raise DatabaseCorruptError(str(path), _FOREIGN)
            for migration in migrations:
                if found < migration.version <= goal:
                    for statement in migration.statements:
                        await connection.execute(statement)
            version = max(found, goal)
            await connection.execute(f"PRAGMA user_version = {int(version)}")
            await connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        except BaseException:
            with anyio.CancelScope(shield=True):
                if connection.in_transaction:
                    await connection.execute("ROLLBACK")
            raise
        with anyio.CancelScope(shield=True):  # see Database.write: never cancel a COMMIT
            await connection.execute("COMMIT")
        return version
    except sqlite3.Error as exc:
        raise translate_error(exc, path) from exc


def _check(path: Path, found: int, latest: int, application_id: int) -> None:
    if application_id not in (0, APPLICATION_ID) or (application_id == 0 and found != 0):
        raise DatabaseCorruptError(str(path), _FOREIGN)
    if found > latest:
        raise SchemaVersionError(str(path), found, latest)
