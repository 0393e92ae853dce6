"""Creating artifacts: validate in the caller, store at once, announce with an event.

An artifact is written to the database when it is created, not through the event bus, so
``Artifact.get(key)`` sees it straight away and it survives the process. It is attached to
the flow run and task run it was created in (read from the run context), and each creation
or update is an event, ``headwater.artifact.created`` / ``.updated``, whose resource is
``headwater.artifact.<id>`` and whose related resources are its runs.

The sync functions write from the calling thread (tens of microseconds); the ``a``-prefixed
twins do the write in a worker thread, so the event loop never blocks on the database.
"""

from __future__ import annotations

import datetime
import math
import re
import uuid
import warnings
from collections.abc import Mapping
from typing import Any

import anyio
import msgspec

from headwater._artifacts.store import (
    Artifact,
    insert_artifact,
    latest_by_key,
    read_artifact,
    update_artifact,
)
from headwater._ids import new_uuid
from headwater.exceptions import ArtifactNotFound, ArtifactProgressWarning, InvalidArtifactError

__all__ = [
    "aget_artifact",
    "build_artifact",
    "check_text",
    "check_key",
    "get_artifact",
    "link_data",
    "progress_value",
    "save_async",
    "save_sync",
    "table_data",
    "update_progress_async",
    "update_progress_sync",
]

_KEY = re.compile(r"[a-z0-9-]+")
_UTC = datetime.timezone.utc


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


def check_text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidArtifactError(f"{what} must be a string, got {type(value).__name__}")
    return value


def _clean(value: Any) -> Any:
    """NaN and infinities become None (JSON null), as Prefect does; containers recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    return value


def _cell(value: Any) -> Any:
    # numpy and pandas scalars know their Python value; anything else is shown as text.
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return _clean(item())
        except (TypeError, ValueError):
            pass
    return str(value)


_encoder = msgspec.json.Encoder(enc_hook=_cell)


def table_data(table: Any) -> str:
    """A table as Prefect stores it: JSON text of the table with NaN as null.

    Accepts a dict of columns (name -> list of values), a list of row dicts, or a list of
    lists (rows).

    Raises:
        InvalidArtifactError: anything else, or rows of mixed kinds.
    """
    if isinstance(table, Mapping):
        for name, column in table.items():
            if not isinstance(column, (list, tuple)):
                raise InvalidArtifactError(
                    f"table column {name!r} must be a list of values, got {type(column).__name__}"
                )
    elif isinstance(table, (list, tuple)):
        rows_of_dicts = all(isinstance(row, Mapping) for row in table)
        if not rows_of_dicts and not all(isinstance(row, (list, tuple)) for row in table):
            raise InvalidArtifactError(
                "a table must be a dict of columns, a list of row dicts or a list of lists; "
                "this list mixes rows of different kinds"
            )
    else:
        raise InvalidArtifactError(
            "a table must be a dict of columns, a list of row dicts or a list of lists, "
            f"got {type(table).__name__}"
        )
    return _encoder.encode(_clean(table)).decode()


def link_data(link: str, link_text: str | None) -> str:
    """A link as Prefect stores it: ``[text](url)``."""
    check_text(link, "link")
    if not link:
        raise InvalidArtifactError("link must not be empty")
    text = link if link_text is None else check_text(link_text, "link_text")
    return f"[{text}]({link})"


def progress_value(progress: Any, stacklevel: int) -> float:
    """``progress`` as a float in 0-100, clamped with an :class:`ArtifactProgressWarning`.

    Raises:
        InvalidArtifactError: not a number, or NaN.
    """
    if isinstance(progress, bool) or not isinstance(progress, (int, float)):
        raise InvalidArtifactError(
            f"progress must be a number from 0 to 100, got {type(progress).__name__}"
        )
    value = float(progress)
    if math.isnan(value):
        raise InvalidArtifactError("progress must be a number from 0 to 100, got NaN")
    if value < 0 or value > 100:
        clamped = min(100.0, max(0.0, value))
        warnings.warn(
            f"progress {progress!r} is outside 0-100; it was clamped to {clamped:g}",
            ArtifactProgressWarning,
            stacklevel=stacklevel + 1,
        )
        return clamped
    return value


def build_artifact(type: str, data: Any, key: str | None, description: str | None) -> Artifact:
    """A new artifact attached to the current flow run and task run, if any."""
    from headwater.engine.context import current_flow_run, current_task_run

    check_key(key)
    if description is not None:
        check_text(description, "description")
    task_ctx = current_task_run()
    flow_ctx = current_flow_run()
    flow_run_id = flow_ctx.flow_run.id if flow_ctx is not None else None
    task_run_id = None
    if task_ctx is not None:
        task_run_id = task_ctx.task_run.id
        flow_run_id = task_ctx.task_run.flow_run_id or flow_run_id
    now = datetime.datetime.now(_UTC)
    return Artifact(
        id=new_uuid(),
        key=key,
        type=type,
        description=description,
        data=data,
        flow_run_id=flow_run_id,
        task_run_id=task_run_id,
        created=now,
        updated=now,
    )


def _insert(artifact: Artifact) -> None:
    from headwater.storage.sync_connection import get_sync_connection

    with get_sync_connection().write() as connection:
        insert_artifact(connection, artifact)


def _emit(artifact: Artifact, action: str) -> None:
    from headwater.events.emit import emit_event

    related: list[Mapping[str, str]] = []
    if artifact.flow_run_id is not None:
        related.append(
            {
                "headwater.resource.id": f"headwater.flow-run.{artifact.flow_run_id}",
                "headwater.resource.role": "flow-run",
            }
        )
    if artifact.task_run_id is not None:
        related.append(
            {
                "headwater.resource.id": f"headwater.task-run.{artifact.task_run_id}",
                "headwater.resource.role": "task-run",
            }
        )
    if artifact.key is not None:
        related.append(
            {
                "headwater.resource.id": f"headwater.artifact-collection.{artifact.key}",
                "headwater.resource.role": "artifact-collection",
            }
        )
    resource = {
        "headwater.resource.id": f"headwater.artifact.{artifact.id}",
        "headwater.artifact.type": artifact.type,
    }
    if artifact.key is not None:
        resource["headwater.resource.name"] = artifact.key
    payload: dict[str, Any] = {
        "key": artifact.key,
        "type": artifact.type,
        "description": artifact.description,
        "flow_run_id": str(artifact.flow_run_id) if artifact.flow_run_id else None,
        "task_run_id": str(artifact.task_run_id) if artifact.task_run_id else None,
    }
    if artifact.type == "progress":
        payload["progress"] = artifact.data  # small; other payloads may be megabytes
    emit_event(f"headwater.artifact.{action}", resource=resource, related=related, payload=payload)


def save_sync(artifact: Artifact) -> uuid.UUID:
    """Store a new artifact from this thread and announce it; returns its id."""
    _insert(artifact)
    _emit(artifact, "created")
    return artifact.id


async def save_async(artifact: Artifact) -> uuid.UUID:
    """Store a new artifact from a worker thread and announce it; returns its id."""
    await anyio.to_thread.run_sync(_insert, artifact)
    _emit(artifact, "created")
    return artifact.id


def _update(artifact_id: uuid.UUID | str, progress: float, description: str | None) -> Artifact:
    from headwater.storage.sync_connection import get_sync_connection

    try:
        identifier = uuid.UUID(str(artifact_id))
    except ValueError:
        raise InvalidArtifactError(f"{artifact_id!r} is not an artifact id") from None
    with get_sync_connection().write() as connection:
        found = read_artifact(connection, identifier)
        if found is None:
            raise ArtifactNotFound(f"no artifact with id {artifact_id}")
        if found.type != "progress":
            raise InvalidArtifactError(
                f"artifact {artifact_id} is a {found.type} artifact; "
                "only progress artifacts can be updated"
            )
        updated = update_artifact(
            connection, identifier, progress, description, datetime.datetime.now(_UTC)
        )
    assert updated is not None
    return updated


def update_progress_sync(
    artifact_id: uuid.UUID | str, progress: float, description: str | None
) -> uuid.UUID:
    updated = _update(artifact_id, progress, description)
    _emit(updated, "updated")
    return updated.id


async def update_progress_async(
    artifact_id: uuid.UUID | str, progress: float, description: str | None
) -> uuid.UUID:
    updated = await anyio.to_thread.run_sync(_update, artifact_id, progress, description)
    _emit(updated, "updated")
    return updated.id


def get_artifact(key: str) -> Artifact | None:
    """The newest artifact with ``key``, or None."""
    from headwater.settings import get_settings
    from headwater.storage.sqlite import database_path
    from headwater.storage.sync_connection import get_sync_connection

    check_key(key)
    if not database_path(get_settings()).exists():
        return None  # nothing was ever stored: do not create a database to say so
    with get_sync_connection().read() as connection:
        return latest_by_key(connection, key)


async def aget_artifact(key: str) -> Artifact | None:
    """Async twin of :func:`get_artifact`."""
    check_key(key)
    return await anyio.to_thread.run_sync(get_artifact, key)
