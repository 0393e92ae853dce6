"""Artifacts: markdown, tables, links, images and progress that runs publish for people.

The same functions as ``prefect.artifacts``; each returns the new artifact's UUID and has an
async twin (``acreate_...``). An artifact is attached to the flow run and task run it is
created in, stored at once in the local database, and announced with a
``headwater.artifact.created`` event. Reusing a key makes a new version; ``Artifact.get(key)``
returns the newest. List them with ``headwater artifact ls``.
"""

from headwater.artifacts.publish import (
    acreate_image_artifact,
    acreate_link_artifact,
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
    create_image_artifact,
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from headwater.artifacts.store import Artifact

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
