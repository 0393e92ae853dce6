"""Tag concurrency for task runs: one slot per limited tag, on the limit named ``tag:<tag>``.

The task engine calls :func:`acquire_task_slots` around each attempt, so this sits on the
per-task hot path. A task run without tags, or whose tags have no limit, must cost next to
nothing: the set of limited tags is cached in memory and reread at most every
:data:`TAG_CACHE_TTL` seconds (at once after a limit is changed in this process), and in
that case the function returns a shared no-op context manager without touching the
database. This module imports nothing heavy: ``import headwater`` installs it as the engine's
:mod:`~headwater.engine.task_slots` provider.

A task run waiting for a slot stays Pending (as in Prefect, where ``AwaitingConcurrencySlot``
is for deployments) and logs one INFO line saying what it waits for.
"""

from __future__ import annotations

import logging
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from headwater.engine.task_slots import NO_SLOTS, NoSlots
from headwater.settings import Settings, get_settings

if TYPE_CHECKING:
    from headwater.concurrency.acquire import Holding, SlotRequest
    from headwater.concurrency.slots import Blocked
    from headwater.engine.runs import TaskRun

__all__ = ["TAG_CACHE_TTL", "TaskSlots", "acquire_task_slots", "invalidate_tag_cache"]

TAG_CACHE_TTL = 2.0
"""Seconds a process trusts its list of limited tags; limits changed by another process (the
CLI, say) apply to task runs that start after at most this long."""

TASK_LEASE_DURATION = 300.0

logger = logging.getLogger("headwater.concurrency")


class _TagCache:
    __slots__ = ("checked", "generation", "limited", "refreshing", "settings", "warned")

    def __init__(self) -> None:
        self.limited: frozenset[str] = frozenset()
        self.checked = -1e18  # monotonic time of the last read; far past: read on first use
        self.settings: Settings | None = None
        self.refreshing = False
        self.warned = False
        self.generation = 0  # bumped by invalidate_tag_cache()

    def fresh(self) -> bool:
        return self.settings is get_settings() and time.monotonic() - self.checked < TAG_CACHE_TTL

    def usable(self) -> bool:
        """Fresh, or stale while another caller rereads it: thousands of task runs starting
        together when the TTL runs out make one read between them, not one each."""
        if self.settings is not get_settings():
            return False
        return self.refreshing or time.monotonic() - self.checked < TAG_CACHE_TTL

    def refresh(self) -> frozenset[str]:
        """Read the limited tags (a blocking call)."""
        from headwater.exceptions import StorageError
        from headwater.storage.sqlite import database_path

        settings = get_settings()
        limited: frozenset[str] = frozenset()
        generation = self.generation
        self.refreshing = True
        try:
            # No database file: no limits, and no reason to create one for a task run.
            if database_path(settings).exists():
                from headwater.concurrency.store import limited_tags
                from headwater.storage.sync_connection import get_sync_connection

                with get_sync_connection(settings).read() as connection:
                    limited = limited_tags(connection)
        except StorageError as exc:
            if not self.warned:
                self.warned = True
                logger.warning("tag concurrency limits are not applied: %s", exc)
        finally:
            self.refreshing = False
        # A limit changed while this read ran: keep what was read, but read again next time.
        checked = time.monotonic() if generation == self.generation else -1e18
        self.limited, self.settings, self.checked = limited, settings, checked
        return limited


_cache = _TagCache()


def invalidate_tag_cache() -> None:
    """Forget the limited tags, so the next task run rereads them."""
    _cache.generation += 1
    _cache.checked = -1e18


class TaskSlots:
    """Holds a task run's tag slots for one attempt; ``with`` or ``async with``."""

    __slots__ = ("_holding", "task_run")

    def __init__(self, task_run: TaskRun) -> None:
        self.task_run = task_run
        self._holding: Holding | None = None

    def _request(self, limited: frozenset[str]) -> SlotRequest | None:
        from headwater.concurrency.acquire import ConcurrencyLeaseHolder, SlotRequest

        names = [f"tag:{tag}" for tag in self.task_run.tags if tag in limited]
        if not names:
            return None
        return SlotRequest(
            names,
            1,
            lease_duration=TASK_LEASE_DURATION,
            holder=ConcurrencyLeaseHolder("task_run", self.task_run.id),
        )

    def _waiting(self, blocked: Blocked) -> None:
        from headwater.engine.logging import TASK_RUN_LOGGER, RunLoggerAdapter

        task_run = self.task_run
        fields: dict[str, Any] = {
            "task_run_id": str(task_run.id),
            "task_run_name": task_run.name,
            "task_name": task_run.task_name,
            "flow_run_id": str(task_run.flow_run_id) if task_run.flow_run_id else None,
        }
        RunLoggerAdapter(logging.getLogger(TASK_RUN_LOGGER), fields).info(
            "Waiting for a concurrency slot on %s; the task run stays Pending until one frees up",
            ", ".join(repr(name) for name in blocked.names),
        )

    def __enter__(self) -> None:
        limited = _cache.limited if _cache.usable() else _cache.refresh()
        request = self._request(limited)
        if request is not None:
            from headwater.concurrency.acquire import acquire_sync

            self._holding = acquire_sync(request, self._waiting)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        holding, self._holding = self._holding, None
        if holding is not None:
            holding.release_sync()

    async def __aenter__(self) -> None:
        if _cache.usable():
            limited = _cache.limited
        else:
            import anyio

            limited = await anyio.to_thread.run_sync(_cache.refresh)
        request = self._request(limited)
        if request is not None:
            from headwater.concurrency.acquire import acquire_async

            self._holding = await acquire_async(request, self._waiting)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        holding, self._holding = self._holding, None
        if holding is not None:
            await holding.release_async()


def acquire_task_slots(task_run: TaskRun) -> TaskSlots | NoSlots:
    """The slots a task run needs for one attempt, as a sync and async context manager.

    Entering waits (the run stays Pending) until every limited tag of the run has a free
    slot on its ``tag:<tag>`` limit, then takes one slot on each; leaving gives them back.
    Tags without a limit, and inactive limits, do not limit anything.

    Raises (on entering):
        ConcurrencySlotAcquisitionError: a tag's limit is 0 (Prefect aborts such runs).
    """
    tags = task_run.tags
    if not tags:
        return NO_SLOTS
    cache = _cache
    if cache.fresh() and cache.limited.isdisjoint(tags):
        return NO_SLOTS
    return TaskSlots(task_run)
