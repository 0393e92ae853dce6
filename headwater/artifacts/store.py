"""Artifacts in the database: the ``Artifact`` record and the SQL that stores and finds it.

Every function takes a ``sqlite3`` connection inside a transaction (see
:class:`~headwater.storage.sync_connection.SyncConnection`). A key's versions are all its
rows; the newest is the one ``Artifact.get(key)`` returns (Prefect's "collection").
"""

from __future__ import annotations

import datetime
import re
import sqlite3
import uuid
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.to_thread
import msgspec

from headwater.exceptions import InvalidArtifactError
from headwater.settings import get_settings
from headwater.storage.sqlite import database_path
from headwater.storage.sync_connection import get_sync_connection

__all__ = [
    "Artifact",
    "check_key",
    "insert_artifact",
    "latest_by_key",
    "list_artifacts",
    "read_artifact",
    "update_artifact",
]

_KEY = re.compile(r"[a-z0-9-]+")
_COLUMNS = "id, key, type, description, data, flow_run_id, task_run_id, created, updated"


def check_key(key: str | None) -> str | None:
    """Return ``key`` if it is None or lowercase letters, digits and dashes.

    Raises:
        InvalidArtifactError: (a ValueError) naming the bad key.
    """
    if key is None:
        return None
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise InvalidArtifactError(
            f"artifact key {key!r} is not valid: use only lowercase letters, digits and dashes"
        )
    return key


class Artifact(msgspec.Struct, frozen=True, kw_only=True):
    """A stored artifact: something a run produced for people to read.

    Attributes:
        id: the artifact's id (what the ``create_*`` functions return).
        key: its key, or None; a key's newest artifact is its current version.
        type: ``markdown``, ``table``, ``link``, ``image`` or ``progress``.
        description: markdown shown with it, or None.
        data: the payload, as Prefect stores it: markdown text, a table as a JSON string,
            ``[text](url)`` for a link, an image URL, or a number from 0 to 100.
        flow_run_id: the flow run it was created in, or None.
        task_run_id: the task run it was created in, or None.
        created: when it was created (UTC).
        updated: when it was last changed (UTC); progress artifacts change.
    """

    id: uuid.UUID
    key: str | None
    type: str
    description: str | None
    data: Any
    flow_run_id: uuid.UUID | None
    task_run_id: uuid.UUID | None
    created: datetime.datetime
    updated: datetime.datetime

    @classmethod
    def get(cls, key: str) -> Artifact | None:
        """The newest artifact with ``key``, or None when there is none."""
        check_key(key)
        if not database_path(get_settings()).exists():
            return None  # nothing was ever stored: do not create a database to say so
        with get_sync_connection().read() as connection:
            return latest_by_key(connection, key)

    @classmethod
    async def aget(cls, key: str) -> Artifact | None:
        """Async twin of :meth:`get`."""
        check_key(key)
        return await anyio.to_thread.run_sync(cls.get, key)


def _uuid(text: str | None) -> uuid.UUID | None:
    return uuid.UUID(text) if text else None


def _artifact(row: Sequence[Any]) -> Artifact:
    return Artifact(
        id=uuid.UUID(row[0]),
        key=row[1],
        type=row[2],
        description=row[3],
        data=msgspec.json.decode(row[4]),
        flow_run_id=_uuid(row[5]),
        task_run_id=_uuid(row[6]),
        created=datetime.datetime.fromisoformat(row[7]),
        updated=datetime.datetime.fromisoformat(row[8]),
    )


def insert_artifact(connection: sqlite3.Connection, artifact: Artifact) -> None:
    connection.execute(
        f"INSERT INTO artifacts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            str(artifact.id),
            artifact.key,
            artifact.type,
            artifact.description,
            msgspec.json.encode(artifact.data).decode(),
            str(artifact.flow_run_id) if artifact.flow_run_id else None,
            str(artifact.task_run_id) if artifact.task_run_id else None,
            artifact.created.isoformat(timespec="microseconds"),
            artifact.updated.isoformat(timespec="microseconds"),
        ),
    )


def read_artifact(connection: sqlite3.Connection, artifact_id: uuid.UUID) -> Artifact | None:
    row = connection.execute(
        f"SELECT {_COLUMNS} FROM artifacts WHERE id = ?", (str(artifact_id),)
    ).fetchone()
    return _artifact(row) if row else None


def update_artifact(
    connection: sqlite3.Connection,
    artifact_id: uuid.UUID,
    data: Any,
    description: str | None,
    now: datetime.datetime,
) -> Artifact | None:
    """Replace an artifact's data (and description, unless None); None if it is not stored."""
    cursor = connection.execute(
        "UPDATE artifacts SET data = ?, description = COALESCE(?, description), updated = ?"
        " WHERE id = ?",
        (
            msgspec.json.encode(data).decode(),
            description,
            now.isoformat(timespec="microseconds"),
            str(artifact_id),
        ),
    )
    if cursor.rowcount == 0:
        return None
    return read_artifact(connection, artifact_id)


def latest_by_key(connection: sqlite3.Connection, key: str) -> Artifact | None:
    row = connection.execute(
        f"SELECT {_COLUMNS} FROM artifacts WHERE key = ? ORDER BY created DESC, id DESC LIMIT 1",
        (key,),
    ).fetchone()
    return _artifact(row) if row else None


def list_artifacts(
    connection: sqlite3.Connection,
    *,
    key: str | None = None,
    flow_run_id: str | None = None,
    task_run_id: str | None = None,
    limit: int = 100,
) -> list[Artifact]:
    """Artifacts, newest first; run ids may be given as a prefix of the id."""
    clauses, params = [], []
    if key is not None:
        clauses.append("key = ?")
        params.append(key)
    if flow_run_id is not None:
        clauses.append("flow_run_id LIKE ?")
        params.append(flow_run_id.lower() + "%")
    if task_run_id is not None:
        clauses.append("task_run_id LIKE ?")
        params.append(task_run_id.lower() + "%")
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = connection.execute(
        f"SELECT {_COLUMNS} FROM artifacts{where} ORDER BY created DESC, id DESC LIMIT ?",
        (*params, limit),
    ).fetchall()
    return [_artifact(row) for row in rows]
