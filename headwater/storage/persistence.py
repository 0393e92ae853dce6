"""Starting, running and stopping persistence: the bridge between the bus and the database.

:func:`ensure_persistence` is what the engine's start hook calls when a run starts (a
cheap check once running). The first call opens (and migrates) the database on
headwater's service loop, subscribes a :class:`~headwater.storage.writer.PersistenceWriter`
to the bus (lossless), registers the run log sink, and starts the maintenance loop: a
crash sweep at start and every minute, retention pruning at start and every hour.

When the database cannot be used, the error (a :class:`~headwater.exceptions.StorageError`
naming the file and the cause) is raised by every call, the same error without a new
attempt, as long as ``HEADWATER_PERSISTENCE_REQUIRED`` is true (the default); when it is
false, a warning is logged once and runs go on without history. The same applies when
writes start failing later (disk full): with persistence required, the next run fails
with that error.

Persistence is a service of :mod:`headwater.lifecycle` (:data:`PERSISTENCE`): at exit it
flushes the bus, so every event published before exit is committed, writes buffered logs
and closes the file; on SIGTERM (when no other handler is installed) the bus is flushed and
buffered logs written before the signal's default action proceeds. What a hard kill can
lose is described in :mod:`headwater.storage.writer`.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from typing import Any

import anyio

from headwater import lifecycle
from headwater.engine.startup import halt_runs
from headwater.events.bus import EventBus, Subscription, get_bus
from headwater.events.service import get_service_loop
from headwater.exceptions import StorageError
from headwater.lifecycle import ServiceSpec
from headwater.settings import Settings
from headwater.storage.crashes import mark_crashed_runs
from headwater.storage.database import Database
from headwater.storage.retention import prune
from headwater.storage.rows import format_timestamp, truncate_message
from headwater.storage.sqlite import database_path
from headwater.storage.writer import PersistenceWriter

__all__ = [
    "PERSISTENCE",
    "Persistence",
    "ensure_persistence",
    "get_persistence",
    "stop_persistence",
]

logger = logging.getLogger("headwater.storage")

CRASH_SWEEP_INTERVAL = 60.0
PRUNE_INTERVAL = 3600.0
SUBSCRIPTION_BUFFER = 10_000
EXIT_FLUSH_TIMEOUT = 10.0


class Persistence:
    """One database, its writer and its bus subscription, living on the service loop.

    Build it with :meth:`open` on the loop that will run it, then run :meth:`serve` there.
    """

    def __init__(
        self, settings: Settings, database: Database, writer: PersistenceWriter, bus: EventBus
    ) -> None:
        self.settings = settings
        self.database = database
        self.writer = writer
        self.bus = bus
        self.subscription: Subscription | None = None
        self._closed = anyio.Event()
        # One bound method, so that the sink registry can find it again to remove it.
        self.sink: Callable[[logging.LogRecord], None] = self.log_sink

    @classmethod
    async def open(cls, settings: Settings, bus: EventBus) -> Persistence:
        """Open the database and subscribe to ``bus``; events are buffered from then on.

        Raises:
            StorageError: the database cannot be opened.
        """
        database = await Database.open(settings=settings)
        writer = PersistenceWriter(
            database,
            batch_size=settings.database_batch_size,
            batch_latency=settings.database_batch_latency,
            max_log_length=settings.logging_max_message_length,
            # with persistence required, runs stop at their next task rather than run on
            # unrecorded (the failure is the flow call's error)
            on_health=halt_runs if settings.persistence_required else None,
        )
        persistence = cls(settings, database, writer, bus)
        try:
            # Subscribed from a task on this loop: the bus knows the consumer's thread, so
            # publishers on it never wait for it.
            # items as published: the writer turns transition records into rows directly
            persistence.subscription = bus.subscribe(
                lossless=True,
                buffer_size=SUBSCRIPTION_BUFFER,
                name="persistence",
                materialise=False,
            )
        except BaseException:
            await database.close()
            raise
        return persistence

    async def serve(self) -> None:
        """Write until :meth:`aclose` (or cancellation); then write buffered logs and close."""
        subscription = self.subscription
        assert subscription is not None
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._maintain)
                await self.writer.run(subscription)
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                subscription.close()
                try:
                    await self.writer.flush_logs()
                finally:
                    await self.database.close()
                    self._closed.set()

    async def aclose(self, flush_timeout: float = EXIT_FLUSH_TIMEOUT) -> None:
        """Commit everything published so far, then stop (from a task on the same loop)."""
        if self.subscription is not None and not self.subscription.closed:
            if not await self.bus.aflush(flush_timeout):
                logger.warning("stopping persistence before every event was written")
            self.subscription.close()
        with anyio.move_on_after(flush_timeout):
            await self._closed.wait()

    async def _maintain(self) -> None:
        next_prune = 0.0
        while True:
            now = anyio.current_time()
            try:
                await mark_crashed_runs(self.database, self.bus)
                if now >= next_prune:
                    next_prune = now + PRUNE_INTERVAL
                    await prune(self.database, self.settings.retention_period)
            except StorageError as exc:
                logger.warning("run history maintenance failed: %s", exc)
            await anyio.sleep(CRASH_SWEEP_INTERVAL)

    def log_sink(self, record: logging.LogRecord) -> None:
        """Receive a run log record from the engine's logging (any thread)."""
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
        self.writer.enqueue_log_row(
            (
                getattr(record, "flow_run_id", None),
                getattr(record, "task_run_id", None),
                record.name,
                record.levelno,
                truncate_message(message, self.writer.max_log_length),
                format_timestamp(
                    datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
                ),
            )
        )


def _storage_key(settings: Settings) -> tuple[Any, ...] | None:
    """The settings persistence depends on; others may change without a restart."""
    if not settings.events_enabled:
        return None
    return (
        database_path(settings),
        settings.database_batch_size,
        settings.database_batch_latency,
        settings.database_busy_timeout,
        settings.logging_max_message_length,
        settings.retention_period,
    )


def _check(persistence: Persistence, settings: Settings) -> None:
    error = persistence.writer.error
    if error is not None and settings.persistence_required:
        raise error


def _started(persistence: Persistence, settings: Settings) -> None:
    from headwater.engine.logging import add_log_sink

    add_log_sink(persistence.sink)


def _stopped(persistence: Persistence) -> None:
    from headwater.engine.logging import remove_log_sink

    remove_log_sink(persistence.sink)
    if persistence.writer.error is not None:
        halt_runs(None)  # whatever starts next starts persistence afresh


def _on_sigterm(persistence: Persistence) -> None:
    service = get_service_loop()
    if service.thread is not None:
        service.run_coroutine(persistence.writer.flush_logs(), timeout=EXIT_FLUSH_TIMEOUT)


async def _open(settings: Settings, explicit: bool) -> Persistence:
    return await Persistence.open(settings, get_bus())


PERSISTENCE: ServiceSpec[Persistence] = ServiceSpec(
    name="persistence",
    key=_storage_key,
    open=_open,
    errors=(StorageError,),
    raises=lambda settings, explicit: settings.persistence_required,
    check=_check,
    started=_started,
    stopped=_stopped,
    on_sigterm=_on_sigterm,
    logger=logger,
    unavailable="run history is not being saved: %s (HEADWATER_PERSISTENCE_REQUIRED is false)",
)
"""Run history written to the local database; stops after every service that emits events."""


def get_persistence() -> Persistence | None:
    """The running persistence of this process, if any."""
    return lifecycle.get(PERSISTENCE)


def ensure_persistence() -> Persistence | None:
    """Make sure run history is being written; cheap after the first call.

    Opens and migrates the database named by the settings, subscribes the writer to the
    bus and starts it on the service loop. Does nothing (returns None) when
    ``settings.events_enabled`` is False. When the storage settings change (e.g. another
    ``HEADWATER_HOME`` under ``temporary_settings``), persistence restarts with them.

    Returns:
        The running :class:`Persistence`, or None when persistence is off or impossible and
        not required.

    Raises:
        StorageError: the database cannot be opened or written and
            ``HEADWATER_PERSISTENCE_REQUIRED`` is true; the message names the file and cause.
            The same error is raised again by later calls, without a new attempt.
    """
    return lifecycle.ensure(PERSISTENCE)


def stop_persistence(timeout: float = EXIT_FLUSH_TIMEOUT) -> None:
    """Commit everything published so far, write buffered logs, close the database.

    The next :func:`ensure_persistence` starts afresh. Safe to call when not running.
    """
    lifecycle.stop(PERSISTENCE, timeout)
