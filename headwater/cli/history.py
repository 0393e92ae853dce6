"""Where the commands read run history from: the local database, or the server.

With ``HEADWATER_API_URL`` set, runs happen in many processes (and machines) and their
history is the server's, so every reading command asks the server's HTTP API; otherwise it
reads the local SQLite file. Both sources answer the same questions with the same record
types, so a command has one code path and prints the same rows either way.

Run ids may be given in full or as a unique prefix. Locally a prefix is looked up in the
database; on a server, which has no prefix lookup, it is matched against the
:data:`PREFIX_SCAN` most recent runs.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from headwater.cli.errors import CliUsageError

if TYPE_CHECKING:
    from headwater.client.http import HeadwaterClient
    from headwater.events.filters import EventFilter
    from headwater.events.schema import Event
    from headwater.storage import (
        Database,
        FlowRunDetail,
        FlowRunRecord,
        LogEntry,
        TaskRunDetail,
        TaskRunRecord,
    )
    from headwater.storage.lookup import RunKind

__all__ = ["History", "LocalHistory", "RemoteHistory", "PREFIX_SCAN", "with_history"]

T = TypeVar("T")

PREFIX_SCAN = 1000
_ID_TEXT = re.compile(r"[0-9a-fA-F-]+")
_KIND_WORDS = {"flow-run": "flow run", "task-run": "task run"}


class History(Protocol):
    """What the commands ask of run history, wherever it lives."""

    where: str
    """Shown in messages: the database file or the server URL."""

    async def resolve(self, kind: RunKind, text: str) -> uuid.UUID: ...

    async def flow_runs(self, **filters: Any) -> list[FlowRunRecord]: ...

    async def task_runs(self, **filters: Any) -> list[TaskRunRecord]: ...

    async def flow_run(self, run_id: uuid.UUID) -> FlowRunDetail | None: ...

    async def task_run(self, run_id: uuid.UUID) -> TaskRunDetail | None: ...

    async def logs(self, **filters: Any) -> list[LogEntry]: ...

    async def events(self, event_filter: EventFilter, limit: int) -> list[Event]: ...


def _clean(kind: RunKind, text: str) -> str:
    word = _KIND_WORDS[kind]
    value = text.strip().removeprefix(f"headwater.{kind}.")
    if not _ID_TEXT.fullmatch(value):
        raise CliUsageError(f"no {word} with id '{text}'")
    return value


def _one(kind: RunKind, text: str, matches: Sequence[uuid.UUID]) -> uuid.UUID:
    word = _KIND_WORDS[kind]
    if not matches:
        raise CliUsageError(f"no {word} with id '{text}'")
    if len(matches) > 1:
        shown = ", ".join(str(match) for match in matches[:2])
        raise CliUsageError(
            f"id prefix '{text}' matches several {word}s ({shown}, ...); give more characters"
        )
    return matches[0]


class LocalHistory:
    """Run history in the local database."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.where = str(database.path)

    async def resolve(self, kind: RunKind, text: str) -> uuid.UUID:
        from headwater.cli.database import resolve_run_id

        return await resolve_run_id(self.database, kind, text)

    async def flow_runs(self, **filters: Any) -> list[FlowRunRecord]:
        from headwater.storage import read_flow_runs

        return await read_flow_runs(self.database, **filters)

    async def task_runs(self, **filters: Any) -> list[TaskRunRecord]:
        from headwater.storage import read_task_runs

        return await read_task_runs(self.database, **filters)

    async def flow_run(self, run_id: uuid.UUID) -> FlowRunDetail | None:
        from headwater.storage import read_flow_run

        return await read_flow_run(self.database, run_id, log_limit=0)

    async def task_run(self, run_id: uuid.UUID) -> TaskRunDetail | None:
        from headwater.storage import read_task_run

        return await read_task_run(self.database, run_id, log_limit=0)

    async def logs(self, **filters: Any) -> list[LogEntry]:
        from headwater.storage import read_logs

        return await read_logs(self.database, **filters)

    async def events(self, event_filter: EventFilter, limit: int) -> list[Event]:
        from headwater.storage import read_events

        return (await read_events(self.database, event_filter, limit=limit)).events


class RemoteHistory:
    """Run history on the server named by ``HEADWATER_API_URL``."""

    def __init__(self, client: HeadwaterClient) -> None:
        self.client = client
        self.where = client.base_url

    async def resolve(self, kind: RunKind, text: str) -> uuid.UUID:
        value = _clean(kind, text)
        try:
            return uuid.UUID(value)  # a full id in any spelling
        except ValueError:
            pass
        prefix = value.lower()
        if kind == "flow-run":
            runs: Sequence[Any] = await self.client.read_flow_runs(limit=PREFIX_SCAN)
        else:
            runs = await self.client.read_task_runs(limit=PREFIX_SCAN)
        return _one(kind, text, [run.id for run in runs if str(run.id).startswith(prefix)])

    async def flow_runs(self, **filters: Any) -> list[FlowRunRecord]:
        return await self.client.read_flow_runs(**filters)

    async def task_runs(self, **filters: Any) -> list[TaskRunRecord]:
        return await self.client.read_task_runs(**filters)

    async def flow_run(self, run_id: uuid.UUID) -> FlowRunDetail | None:
        return await self.client.read_flow_run(run_id)

    async def task_run(self, run_id: uuid.UUID) -> TaskRunDetail | None:
        return await self.client.read_task_run(run_id)

    async def logs(self, **filters: Any) -> list[LogEntry]:
        return await self.client.read_logs(**filters)

    async def events(self, event_filter: EventFilter, limit: int) -> list[Event]:
        return await self.client.read_events(event_filter, limit=limit)


def with_history(work: Callable[[History], Awaitable[T]]) -> T:
    """Await ``work(history)`` on the server when ``HEADWATER_API_URL`` is set, else on the
    local database, and return what it returned.

    Raises:
        ApiError: the server cannot be reached or refused (one line naming the URL, exit 1).
        StorageError: the database cannot be opened or read (one line naming the file).
    """
    import anyio

    from headwater.settings import get_settings

    settings = get_settings()

    async def main() -> T:
        if settings.api_url:
            from headwater.client.http import HeadwaterClient

            async with HeadwaterClient(settings) as client:
                return await work(RemoteHistory(client))
        from headwater.exceptions import StorageError
        from headwater.storage import mark_crashed_runs, open_database

        database = await open_database()
        try:
            try:
                # runs whose process died read Crashed now, not at the next flow's start
                await mark_crashed_runs(database, None)
            except StorageError:
                pass  # a read-only or busy file still answers the question asked
            return await work(LocalHistory(database))
        finally:
            await database.close()

    return anyio.run(main)
