"""Prefect's ``prefect.`` names, read as headwater's ``headwater.`` ones on the way in.

Every Prefect script that emits events or defines triggers writes ``prefect.resource.id``,
``prefect.resource.role`` or ``prefect.flow-run.*``. Headwater accepts them and stores and
matches them as its own names, so a Prefect trigger sees headwater's events and the other
way round:

- a label *name* in the ``prefect.`` namespace (``prefect.resource.id``,
  ``prefect.state-name``...) becomes ``headwater.<rest>``;
- an event name, resource id or glob about one of the resources headwater itself emits
  events for (``prefect.flow-run.Completed``, ``prefect.flow-run.*``,
  ``prefect.deployment.<id>``...) becomes the ``headwater.`` one. Other ``prefect.``
  values (a user's own ``prefect.my-thing``) are left alone.

Pure string work; nothing here looks at an event's meaning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["KINDS", "headwater_label", "headwater_labels", "headwater_name"]

PREFECT = "prefect."
HEADWATER = "headwater."
KINDS = (
    "flow-run.",
    "task-run.",
    "flow.",
    "task.",
    "deployment.",
    "tag.",
    "automation.",
    "work-pool.",
    "work-queue.",
    "worker.",
    "block-document.",
    "block-type.",
    "variable.",
    "artifact.",
    "artifact-collection.",
    "concurrency-limit.",
    "webhook.",
    "runner.",
)
"""What follows ``prefect.`` in the names of the resources and events headwater emits."""


def headwater_name(value: str) -> str:
    """An event name, resource id or glob, with a Prefect resource kind renamed."""
    if value.startswith(PREFECT):
        rest = value[len(PREFECT) :]
        if rest.startswith(KINDS) or rest in ("*", "flow-run", "task-run"):
            return HEADWATER + rest
    return value


def headwater_label(name: str) -> str:
    """A label name: every ``prefect.`` label is the ``headwater.`` one."""
    if name.startswith(PREFECT):
        return HEADWATER + name[len(PREFECT) :]
    return name


def headwater_labels(labels: Mapping[str, Any]) -> dict[str, Any]:
    """Labels with Prefect's names renamed, and the resource-id values that name our kinds.

    Returns the same mapping (as a dict) when nothing is Prefect's, so the common case
    costs one scan of the keys.
    """
    if not any(key.startswith(PREFECT) for key in labels) and not any(
        isinstance(value, str) and value.startswith(PREFECT) for value in labels.values()
    ):
        return dict(labels)
    renamed: dict[str, Any] = {}
    for key, value in labels.items():
        label = headwater_label(key)
        if isinstance(value, str):
            value = headwater_name(value)
        elif isinstance(value, list):
            value = [headwater_name(item) if isinstance(item, str) else item for item in value]
        renamed[label] = value
    return renamed
