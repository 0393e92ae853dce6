"""Tag concurrency around each task attempt: a seam that the concurrency layer fills.

The task engine holds ``acquire(task_run)`` (a sync and async context manager) around each
attempt, so a run waits in Pending for a slot on each of its limited tags. How slots are
counted (in the database, across processes) is :mod:`headwater.concurrency`'s business; it
sits above the engine and installs its provider with :func:`set_provider` when headwater is
imported. Until then an attempt takes no slots.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater.engine.runs import TaskRun

__all__ = ["NO_SLOTS", "NoSlots", "acquire", "set_provider"]


class NoSlots:
    """The context manager for a task run that no tag limit concerns: does nothing."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc_info: object) -> None:
        return None


NO_SLOTS = NoSlots()


def _no_slots(task_run: TaskRun) -> Any:
    return NO_SLOTS


acquire: Callable[[TaskRun], Any] = _no_slots
"""The slots ``task_run`` needs for one attempt (read as ``task_slots.acquire``: replaceable)."""


def set_provider(provider: Callable[[TaskRun], Any]) -> None:
    """Install what :data:`acquire` does (the concurrency layer calls this once)."""
    global acquire
    acquire = provider
