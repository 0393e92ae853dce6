"""Finding runs by a prefix of their id, so people can type ``3f2a9c`` instead of a whole UUID.

Run ids are stored as lowercase hyphenated text in primary-key columns, so a prefix is an
index range scan (``id >= prefix AND id < prefix_end``), cheap on any table size.
"""

from __future__ import annotations

import uuid
from typing import Literal

from headwater.storage.database import Database

__all__ = ["RunKind", "find_run_ids"]

RunKind = Literal["flow-run", "task-run"]

_TABLES: dict[str, str] = {"flow-run": "flow_runs", "task-run": "task_runs"}


def _prefix_end(prefix: str) -> str:
    # Ids are hex digits and hyphens, so the last character is never the largest code point.
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


async def find_run_ids(
    database: Database, kind: RunKind, prefix: str, *, limit: int = 2
) -> list[uuid.UUID]:
    """Ids of stored runs of ``kind`` whose id starts with ``prefix`` (case-insensitive).

    A full UUID finds at most that run. Asking for ``limit=2`` is enough to tell "unique"
    from "ambiguous" without reading every match.

    Args:
        database: the database to read.
        kind: ``"flow-run"`` or ``"task-run"``.
        prefix: the start of an id; empty matches nothing.
        limit: at most this many ids are returned.

    Raises:
        StorageError: the database cannot be read.
    """
    prefix = prefix.strip().lower()
    if not prefix:
        return []
    table = _TABLES[kind]
    sql = f"SELECT id FROM {table} WHERE id >= ? AND id < ? ORDER BY id LIMIT ?"
    async with (
        database.read() as reader,
        reader.execute(sql, (prefix, _prefix_end(prefix), limit)) as cursor,
    ):
        rows = await cursor.fetchall()
    return [uuid.UUID(row[0]) for row in rows]
