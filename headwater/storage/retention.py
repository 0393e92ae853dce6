"""Retention: removing runs, events and logs older than a period.

Pruning runs in many small transactions (``batch_size`` rows each), each taking the write
lock only for a few milliseconds, so the persistence writer of this process (and of any
other process) slips in between: pruning never holds up a flow run. Rows are chosen
through indexes only (``events.occurred``, ``logs.timestamp``, ``*_runs.created``), and an
event's ``event_resources`` rows are removed by their exact primary key, in the same
transaction as the event.

A run is pruned when both its creation and its latest state change are older than the
cutoff; a run still changing state is kept, and so are the events about it: its state
history is its state-change events.
"""

from __future__ import annotations

import datetime
from functools import partial
from typing import Any

import aiosqlite
import anyio
import anyio.lowlevel
import msgspec

from headwater.storage.database import Database
from headwater.storage.rows import format_timestamp

__all__ = ["PruneResult", "prune"]


class PruneResult(msgspec.Struct, kw_only=True):
    """How many rows :func:`prune` removed, per table."""

    flow_runs: int = 0
    task_runs: int = 0
    events: int = 0
    event_resources: int = 0
    logs: int = 0

    @property
    def total(self) -> int:
        return self.flow_runs + self.task_runs + self.events + self.event_resources + self.logs


class _Related(msgspec.Struct):
    related: list[dict[str, str]] = []


_decode_related = msgspec.json.Decoder(_Related).decode


# Each step removes one batch inside the caller's transaction and returns what it removed
# per table; counts are added up only after the commit, since a step may be retried.
_Counts = dict[str, int]


async def _prune_runs(
    connection: aiosqlite.Connection, table: str, cutoff: str, limit: int
) -> tuple[int, _Counts]:
    async with connection.execute(
        f"SELECT id FROM {table} WHERE created < ? AND state_timestamp < ? LIMIT ?",
        (cutoff, cutoff, limit),
    ) as cursor:
        ids = [(row[0],) for row in await cursor.fetchall()]
    if not ids:
        return 0, {}
    await connection.executemany(f"DELETE FROM {table} WHERE id = ?", ids)
    return len(ids), {table: len(ids)}


# A run's state history is its events: the events about a run that is kept (created or
# changed state since the cutoff) stay with it.
_KEPT_RUNS = (
    "SELECT 'headwater.flow-run.' || id FROM flow_runs WHERE id IN (SELECT value FROM"
    " json_each(?1)) AND (created >= ?2 OR state_timestamp >= ?2)"
    " UNION ALL SELECT 'headwater.task-run.' || id FROM task_runs WHERE id IN (SELECT value"
    " FROM json_each(?1)) AND (created >= ?2 OR state_timestamp >= ?2)"
)
_RUN_PREFIXES = ("headwater.flow-run.", "headwater.task-run.")
_PREFIX_LENGTH = len(_RUN_PREFIXES[0])


async def _prune_events(
    connection: aiosqlite.Connection, cutoff: str, limit: int, after: tuple[str, str]
) -> tuple[int, _Counts, tuple[str, str]]:
    """Remove the next ``limit`` events older than ``cutoff`` after position ``after``.

    Returns how many were examined, what was removed, and the position reached.
    """
    async with connection.execute(
        "SELECT id, occurred, resource_id, data FROM events"
        " WHERE occurred < ? AND (occurred, id) > (?, ?) ORDER BY occurred, id LIMIT ?",
        (cutoff, *after, limit),
    ) as cursor:
        rows = list(await cursor.fetchall())
    if not rows:
        return 0, {}, after
    # both prefixes have the same length
    run_ids = {row[2][_PREFIX_LENGTH:] for row in rows if row[2].startswith(_RUN_PREFIXES)}
    kept: set[str] = set()
    if run_ids:
        async with connection.execute(
            _KEPT_RUNS, (msgspec.json.encode(sorted(run_ids)).decode(), cutoff)
        ) as cursor:
            kept = {row[0] for row in await cursor.fetchall()}
    keys: list[tuple[str, str, str]] = []
    removed: list[tuple[str]] = []
    for event_id, occurred, resource_id, data in rows:
        if resource_id in kept:
            continue
        removed.append((event_id,))
        for related in _decode_related(data).related:
            related_id = related.get("headwater.resource.id")
            if related_id is not None:
                keys.append((related_id, occurred, event_id))
    before = connection.total_changes
    await connection.executemany(
        "DELETE FROM event_resources WHERE resource_id = ? AND occurred = ? AND event_id = ?",
        keys,
    )
    resources = connection.total_changes - before
    await connection.executemany("DELETE FROM events WHERE id = ?", removed)
    last = (rows[-1][1], rows[-1][0])
    return len(rows), {"events": len(removed), "event_resources": resources}, last


async def _prune_logs(
    connection: aiosqlite.Connection, cutoff: str, limit: int
) -> tuple[int, _Counts]:
    before = connection.total_changes
    await connection.execute(
        "DELETE FROM logs WHERE id IN"
        " (SELECT id FROM logs WHERE timestamp < ? ORDER BY timestamp LIMIT ?)",
        (cutoff, limit),
    )
    removed = connection.total_changes - before
    return removed, {"logs": removed}


async def prune(
    database: Database,
    older_than: datetime.timedelta | datetime.datetime,
    *,
    batch_size: int = 500,
    now: datetime.datetime | None = None,
) -> PruneResult:
    """Remove everything older than ``older_than``, in batches of ``batch_size`` rows.

    Args:
        database: the database to prune.
        older_than: a period (rows older than ``now - older_than`` go) or a cutoff time.
        batch_size: rows per table per transaction; smaller batches hold the write lock
            for less time.
        now: the current time (tests pass a fixed one).

    Returns:
        The number of rows removed, per table.

    Raises:
        StorageError: the database cannot be written.
    """
    if isinstance(older_than, datetime.timedelta):
        now = now or datetime.datetime.now(datetime.timezone.utc)
        cutoff = format_timestamp(now - older_than)
    else:
        cutoff = format_timestamp(older_than)
    result = PruneResult()

    def add(counts: _Counts) -> None:
        for table, count in counts.items():
            setattr(result, table, getattr(result, table) + count)

    # Events by keyset (the events of kept runs stay behind the position).
    position = ("", "")
    while True:
        examined, counts, position = await database.write(
            partial(_prune_events, cutoff=cutoff, limit=batch_size, after=position)
        )
        add(counts)
        # Let a waiting writer take the lock before the next batch.
        await anyio.lowlevel.checkpoint()
        if examined < batch_size:
            break
    steps: list[Any] = [
        lambda connection: _prune_logs(connection, cutoff, batch_size),
        lambda connection: _prune_runs(connection, "task_runs", cutoff, batch_size),
        lambda connection: _prune_runs(connection, "flow_runs", cutoff, batch_size),
    ]
    for step in steps:
        while True:
            removed, counts = await database.write(step)
            add(counts)
            await anyio.lowlevel.checkpoint()
            if removed < batch_size:
                break
    return result
