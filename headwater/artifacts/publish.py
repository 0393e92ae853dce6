"""Publishing artifacts: store, announce with an event, update progress (``prefect.artifacts``).

Each ``create_*`` function returns the new artifact's UUID and has an async twin
(``acreate_...``). An artifact is attached to the flow run and task run it is created in,
stored at once in the local database, and announced with a ``headwater.artifact.created``
event.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.to_thread

from headwater.artifacts.records import (
    build_artifact,
    check_text,
    link_data,
    progress_value,
    table_data,
)
from headwater.artifacts.store import Artifact, insert_artifact, read_artifact, update_artifact
from headwater.engine.dispatch import in_async_context
from headwater.events.emit import emit_event
from headwater.exceptions import ArtifactNotFound, InvalidArtifactError
from headwater.storage.sync_connection import get_sync_connection

__all__ = [
    "Artifact",
    "create_markdown_artifact",
    "create_table_artifact",
    "create_link_artifact",
    "create_image_artifact",
    "create_progress_artifact",
    "update_progress_artifact",
    "acreate_markdown_artifact",
    "acreate_table_artifact",
    "acreate_link_artifact",
    "acreate_image_artifact",
    "acreate_progress_artifact",
    "aupdate_progress_artifact",
]

_UTC = datetime.timezone.utc


def _insert(artifact: Artifact) -> None:
    with get_sync_connection().write() as connection:
        insert_artifact(connection, artifact)


def _emit(artifact: Artifact, action: str) -> None:
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


TableData = Any  # dict of columns, list of row dicts, or list of lists


def create_markdown_artifact(
    markdown: str, key: str | None = None, description: str | None = None
) -> uuid.UUID:
    """Publish markdown text.

    Args:
        markdown: the text.
        key: lowercase letters, digits and dashes; reusing it makes a new version.
        description: markdown shown with the artifact.

    Raises:
        InvalidArtifactError: (a ValueError) a bad key or a markdown that is not a string.
    """
    if in_async_context():
        return acreate_markdown_artifact(markdown, key, description)  # type: ignore[return-value]
    data = check_text(markdown, "markdown")
    return save_sync(build_artifact("markdown", data, key, description))


def create_table_artifact(
    table: TableData, key: str | None = None, description: str | None = None
) -> uuid.UUID:
    """Publish a table: a dict of columns, a list of row dicts, or a list of lists.

    NaN (and infinite) values are stored as null.

    Raises:
        InvalidArtifactError: (a ValueError) a bad key or a value that is not a table.
    """
    if in_async_context():
        return acreate_table_artifact(table, key, description)  # type: ignore[return-value]
    data = table_data(table)
    return save_sync(build_artifact("table", data, key, description))


def create_link_artifact(
    link: str,
    link_text: str | None = None,
    key: str | None = None,
    description: str | None = None,
) -> uuid.UUID:
    """Publish a link, shown as ``link_text`` (default: the link itself).

    Raises:
        InvalidArtifactError: (a ValueError) a bad key or an empty link.
    """
    if in_async_context():
        return acreate_link_artifact(link, link_text, key, description)  # type: ignore[return-value]
    data = link_data(link, link_text)
    return save_sync(build_artifact("link", data, key, description))


def create_image_artifact(
    image_url: str, key: str | None = None, description: str | None = None
) -> uuid.UUID:
    """Publish an image by its (public) URL.

    Raises:
        InvalidArtifactError: (a ValueError) a bad key or a URL that is not a string.
    """
    if in_async_context():
        return acreate_image_artifact(image_url, key, description)  # type: ignore[return-value]
    data = check_text(image_url, "image_url")
    return save_sync(build_artifact("image", data, key, description))


def create_progress_artifact(
    progress: float, key: str | None = None, description: str | None = None
) -> uuid.UUID:
    """Publish a progress figure from 0 to 100; update it with :func:`update_progress_artifact`.

    A value outside 0-100 is clamped, with an
    :class:`~headwater.exceptions.ArtifactProgressWarning`.

    Raises:
        InvalidArtifactError: (a ValueError) a bad key, or a progress that is not a number.
    """
    if in_async_context():
        return acreate_progress_artifact(progress, key, description)  # type: ignore[return-value]
    data = progress_value(progress, stacklevel=2)
    return save_sync(build_artifact("progress", data, key, description))


def update_progress_artifact(
    artifact_id: uuid.UUID | str, progress: float, description: str | None = None
) -> uuid.UUID:
    """Set a progress artifact's value (clamped to 0-100) in place; returns its id.

    Raises:
        ArtifactNotFound: no artifact has that id.
        InvalidArtifactError: it is not a progress artifact, or progress is not a number.
    """
    if in_async_context():
        return aupdate_progress_artifact(artifact_id, progress, description)  # type: ignore[return-value]
    value = progress_value(progress, stacklevel=2)
    return update_progress_sync(artifact_id, value, description)


async def acreate_markdown_artifact(
    markdown: str, key: str | None = None, description: str | None = None
) -> uuid.UUID:
    """Async twin of :func:`create_markdown_artifact`."""
    data = check_text(markdown, "markdown")
    return await save_async(build_artifact("markdown", data, key, description))


async def acreate_table_artifact(
    table: TableData, key: str | None = None, description: str | None = None
) -> uuid.UUID:
    """Async twin of :func:`create_table_artifact`."""
    data = table_data(table)
    return await save_async(build_artifact("table", data, key, description))


async def acreate_link_artifact(
    link: str,
    link_text: str | None = None,
    key: str | None = None,
    description: str | None = None,
) -> uuid.UUID:
    """Async twin of :func:`create_link_artifact`."""
    data = link_data(link, link_text)
    return await save_async(build_artifact("link", data, key, description))


async def acreate_image_artifact(
    image_url: str, key: str | None = None, description: str | None = None
) -> uuid.UUID:
    """Async twin of :func:`create_image_artifact`."""
    data = check_text(image_url, "image_url")
    return await save_async(build_artifact("image", data, key, description))


async def acreate_progress_artifact(
    progress: float, key: str | None = None, description: str | None = None
) -> uuid.UUID:
    """Async twin of :func:`create_progress_artifact`."""
    data = progress_value(progress, stacklevel=2)
    return await save_async(build_artifact("progress", data, key, description))


async def aupdate_progress_artifact(
    artifact_id: uuid.UUID | str, progress: float, description: str | None = None
) -> uuid.UUID:
    """Async twin of :func:`update_progress_artifact`."""
    value = progress_value(progress, stacklevel=2)
    return await update_progress_async(artifact_id, value, description)
