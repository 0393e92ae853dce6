"""Artifacts: markdown, tables, links, images and progress that runs publish for people.

The same functions as ``prefect.artifacts``; each returns the new artifact's UUID and has an
async twin (``acreate_...``). An artifact is attached to the flow run and task run it is
created in, stored at once in the local database, and announced with a
``headwater.artifact.created`` event. Reusing a key makes a new version; ``Artifact.get(key)``
returns the newest. List them with ``headwater artifact ls``.
"""

from __future__ import annotations

import uuid
from typing import Any

from headwater._artifacts import api as _api
from headwater._artifacts.store import Artifact

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
    data = _api.check_text(markdown, "markdown")
    return _api.save_sync(_api.build_artifact("markdown", data, key, description))


def create_table_artifact(
    table: TableData, key: str | None = None, description: str | None = None
) -> uuid.UUID:
    """Publish a table: a dict of columns, a list of row dicts, or a list of lists.

    NaN (and infinite) values are stored as null.

    Raises:
        InvalidArtifactError: (a ValueError) a bad key or a value that is not a table.
    """
    data = _api.table_data(table)
    return _api.save_sync(_api.build_artifact("table", data, key, description))


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
    data = _api.link_data(link, link_text)
    return _api.save_sync(_api.build_artifact("link", data, key, description))


def create_image_artifact(
    image_url: str, key: str | None = None, description: str | None = None
) -> uuid.UUID:
    """Publish an image by its (public) URL.

    Raises:
        InvalidArtifactError: (a ValueError) a bad key or a URL that is not a string.
    """
    data = _api.check_text(image_url, "image_url")
    return _api.save_sync(_api.build_artifact("image", data, key, description))


def create_progress_artifact(
    progress: float, key: str | None = None, description: str | None = None
) -> uuid.UUID:
    """Publish a progress figure from 0 to 100; update it with :func:`update_progress_artifact`.

    A value outside 0-100 is clamped, with an
    :class:`~headwater.exceptions.ArtifactProgressWarning`.

    Raises:
        InvalidArtifactError: (a ValueError) a bad key, or a progress that is not a number.
    """
    data = _api.progress_value(progress, stacklevel=2)
    return _api.save_sync(_api.build_artifact("progress", data, key, description))


def update_progress_artifact(
    artifact_id: uuid.UUID | str, progress: float, description: str | None = None
) -> uuid.UUID:
    """Set a progress artifact's value (clamped to 0-100) in place; returns its id.

    Raises:
        ArtifactNotFound: no artifact has that id.
        InvalidArtifactError: it is not a progress artifact, or progress is not a number.
    """
    value = _api.progress_value(progress, stacklevel=2)
    return _api.update_progress_sync(artifact_id, value, description)


async def acreate_markdown_artifact(
    markdown: str, key: str | None = None, description: str | None = None
) -> uuid.UUID:
    """Async twin of :func:`create_markdown_artifact`."""
    data = _api.check_text(markdown, "markdown")
    return await _api.save_async(_api.build_artifact("markdown", data, key, description))


async def acreate_table_artifact(
    table: TableData, key: str | None = None, description: str | None = None
) -> uuid.UUID:
    """Async twin of :func:`create_table_artifact`."""
    data = _api.table_data(table)
    return await _api.save_async(_api.build_artifact("table", data, key, description))


async def acreate_link_artifact(
    link: str,
    link_text: str | None = None,
    key: str | None = None,
    description: str | None = None,
) -> uuid.UUID:
    """Async twin of :func:`create_link_artifact`."""
    data = _api.link_data(link, link_text)
    return await _api.save_async(_api.build_artifact("link", data, key, description))


async def acreate_image_artifact(
    image_url: str, key: str | None = None, description: str | None = None
) -> uuid.UUID:
    """Async twin of :func:`create_image_artifact`."""
    data = _api.check_text(image_url, "image_url")
    return await _api.save_async(_api.build_artifact("image", data, key, description))


async def acreate_progress_artifact(
    progress: float, key: str | None = None, description: str | None = None
) -> uuid.UUID:
    """Async twin of :func:`create_progress_artifact`."""
    data = _api.progress_value(progress, stacklevel=2)
    return await _api.save_async(_api.build_artifact("progress", data, key, description))


async def aupdate_progress_artifact(
    artifact_id: uuid.UUID | str, progress: float, description: str | None = None
) -> uuid.UUID:
    """Async twin of :func:`update_progress_artifact`."""
    value = _api.progress_value(progress, stacklevel=2)
    return await _api.update_progress_async(artifact_id, value, description)
