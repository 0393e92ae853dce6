"""Block documents in the database: the SQL, and running it from sync or async code.

A block document is one row of ``block_documents``: its type slug, its name (unique per
type), its fields as JSON (secret fields already encrypted by the caller) and timestamps.
Each operation opens the database on the loop that runs it and closes it afterwards; blocks
are configuration, read and written far less often than runs, so simplicity wins over a pool.
Sync callers run the same coroutine on headwater's service loop.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiosqlite
import msgspec

from headwater.events.service import get_service_loop
from headwater.exceptions import BlockAlreadyExistsError
from headwater.ids import new_uuid
from headwater.storage.database import Database, open_database

__all__ = [
    "BlockDocument",
    "BlockDocumentRow",
    "delete_document",
    "list_documents",
    "now_text",
    "read_document",
    "read_document_by_id",
    "run_async",
    "run_sync",
    "write_document",
]

T = TypeVar("T")


class BlockDocument(msgspec.Struct, frozen=True, kw_only=True):
    """What may be shown about a saved block: never its data.

    Attributes:
        id: the document id (``headwater.block-document.<id>`` in events).
        block_type: the block type slug, e.g. ``slack-webhook``.
        name: the name it was saved under.
        created: when it was first saved (UTC).
        updated: when it was last saved (UTC).
    """

    id: uuid.UUID
    block_type: str
    name: str
    created: datetime.datetime
    updated: datetime.datetime


class BlockDocumentRow(msgspec.Struct, frozen=True, kw_only=True):
    """A document with its stored data (secret fields still encrypted)."""

    id: uuid.UUID
    block_type: str
    name: str
    data: str


def now_text() -> str:
    """The current UTC time in the schema's fixed-width ISO-8601 form."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")


async def run_async(work: Callable[[Database], Awaitable[T]]) -> T:
    """Open the database on the running loop, run ``work`` with it, and close it."""
    database = await open_database()
    try:
        return await work(database)
    finally:
        await database.close()


def run_sync(work: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``work`` with an open database on the service loop and wait for it.

    Raises:
        RuntimeError: called from the service loop's own thread; use the async method there.
    """
    return get_service_loop().run_coroutine(run_async(work))


async def write_document(
    database: Database, block_type: str, name: str, data: str, *, overwrite: bool
) -> tuple[uuid.UUID, bool]:
    """Insert or (with ``overwrite``) replace a document.

    Returns:
        The document id (kept when replacing) and whether the document is new.

    Raises:
        BlockAlreadyExistsError: the name is taken and ``overwrite`` is False.
    """

    async def work(connection: aiosqlite.Connection) -> tuple[uuid.UUID, bool]:
        async with connection.execute(
            "SELECT id FROM block_documents WHERE block_type = ? AND name = ?",
            (block_type, name),
        ) as cursor:
            row = await cursor.fetchone()
        stamp = now_text()
        if row is None:
            document_id = new_uuid()
            await connection.execute(
                "INSERT INTO block_documents (id, block_type, name, data, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (str(document_id), block_type, name, data, stamp, stamp),
            )
            return document_id, True
        if not overwrite:
            raise BlockAlreadyExistsError(
                f"a {block_type} block named {name!r} already exists; "
                "pass overwrite=True to replace it"
            )
        await connection.execute(
            "UPDATE block_documents SET data = ?, updated = ? WHERE id = ?", (data, stamp, row[0])
        )
        return uuid.UUID(row[0]), False

    return await database.write(work)


async def read_document(database: Database, block_type: str, name: str) -> BlockDocumentRow | None:
    """The document of that type and name, or None."""
    async with (
        database.read() as connection,
        connection.execute(
            "SELECT id, data FROM block_documents WHERE block_type = ? AND name = ?",
            (block_type, name),
        ) as cursor,
    ):
        row = await cursor.fetchone()
    if row is None:
        return None
    return BlockDocumentRow(id=uuid.UUID(row[0]), block_type=block_type, name=name, data=row[1])


async def read_document_by_id(
    database: Database, document_id: uuid.UUID
) -> BlockDocumentRow | None:
    """The document with that id, or None."""
    async with (
        database.read() as connection,
        connection.execute(
            "SELECT block_type, name, data FROM block_documents WHERE id = ?", (str(document_id),)
        ) as cursor,
    ):
        row = await cursor.fetchone()
    if row is None:
        return None
    return BlockDocumentRow(id=document_id, block_type=row[0], name=row[1], data=row[2])


async def delete_document(database: Database, block_type: str, name: str) -> uuid.UUID | None:
    """Delete the document of that type and name; return its id, or None if there was none."""

    async def work(connection: aiosqlite.Connection) -> uuid.UUID | None:
        # SELECT then DELETE rather than DELETE ... RETURNING, which needs SQLite 3.35.
        async with connection.execute(
            "SELECT id FROM block_documents WHERE block_type = ? AND name = ?",
            (block_type, name),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        await connection.execute("DELETE FROM block_documents WHERE id = ?", (row[0],))
        return uuid.UUID(row[0])

    return await database.write(work)


async def list_documents(database: Database, block_type: str | None = None) -> list[BlockDocument]:
    """Every saved document (of one type, if given), by type then name; no data."""
    sql = "SELECT id, block_type, name, created, updated FROM block_documents"
    parameters: tuple[str, ...] = ()
    if block_type is not None:
        sql += " WHERE block_type = ?"
        parameters = (block_type,)
    async with (
        database.read() as connection,
        connection.execute(sql + " ORDER BY block_type, name", parameters) as cursor,
    ):
        rows = await cursor.fetchall()
    return [
        BlockDocument(
            id=uuid.UUID(row[0]),
            block_type=row[1],
            name=row[2],
            created=datetime.datetime.fromisoformat(row[3]),
            updated=datetime.datetime.fromisoformat(row[4]),
        )
        for row in rows
    ]
