"""Retention: removing runs, events and logs older than a period.

Pruning runs in many small transactions (``batch_size`` rows each), each taking the write
lock only for a few milliseconds, so the persistence writer of this process (and of any
other process) slips in between: pruning never holds up a flow run. Rows are chosen
through indexes only (``events.occurred``, ``logs.timestamp``, ``*_runs.created``), and an
event's ``event_resources`` rows are removed by their exact primary key, in the same
transaction as the event.

Only runs that have ended go: a flow run in a final state whose creation, latest state
change and task runs' state changes are all older than the cutoff (and whose task runs are
all final) goes with its task runs, their events and logs, each run with its own in one
transaction; a run that has not ended is never pruned, however old. Then
events about no stored run, and logs of no stored run, older than the cutoff go by keyset.
"""

from __future__ import annotations

import datetime
from functools import partial

import aiosqlite
import anyio
import anyio.lowlevel
import msgspec

from headwater.exceptions import InvalidRunDeletion
from headwater.storage.database import Database
from headwater.storage.rows import format_timestamp

__all__ = ["PruneResult", "delete_flow_run", "prune"]


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


_FINAL = "('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED')"

# A flow run has ended for retention when it and all its task runs are final and changed
# state before the cutoff (?1). It goes task runs first, then itself, each run together
# with its events and logs in one transaction, so a prune cut off half-way (a short
# process exiting) never leaves a run without its state history, and a batch holds the
# write lock for at most ``batch_size`` runs.
_ENDED_FLOW = (
    f"f.created < ?1 AND f.state_timestamp < ?1 AND f.state_type IN {_FINAL}"
    f" AND NOT EXISTS (SELECT 1 FROM task_runs u WHERE u.flow_run_id = f.id"
    f" AND (u.state_type NOT IN {_FINAL} OR u.state_timestamp >= ?1))"
)
_ENDED_TASK_RUNS = (
    f"SELECT t.id FROM task_runs t JOIN flow_runs f ON f.id = t.flow_run_id"
    f" WHERE {_ENDED_FLOW} LIMIT ?2"
)
# Task runs of no stored flow run (called outside any flow).
_ENDED_LONE_TASK_RUNS = (
    f"SELECT id FROM task_runs t WHERE t.created < ?1 AND t.state_timestamp < ?1"
    f" AND t.state_type IN {_FINAL}"
    f" AND NOT EXISTS (SELECT 1 FROM flow_runs f WHERE f.id = t.flow_run_id) LIMIT ?2"
)
_ENDED_FLOW_RUNS = (
    f"SELECT id FROM flow_runs f WHERE {_ENDED_FLOW}"
    f" AND NOT EXISTS (SELECT 1 FROM task_runs t WHERE t.flow_run_id = f.id) LIMIT ?2"
)
_STEPS = (
    ("task_runs", "task-run", _ENDED_TASK_RUNS),
    ("task_runs", "task-run", _ENDED_LONE_TASK_RUNS),
    ("flow_runs", "flow-run", _ENDED_FLOW_RUNS),
)


async def _delete_run_events(connection: aiosqlite.Connection, resource_ids: list[str]) -> _Counts:
    """Delete the events whose primary resource is one of ``resource_ids``."""
    removed = resources = 0
    for resource_id in resource_ids:
        async with connection.execute(
            "SELECT id, occurred, data FROM events WHERE resource_id = ?", (resource_id,)
        ) as cursor:
            rows = list(await cursor.fetchall())
        keys = [
            (related["headwater.resource.id"], occurred, event_id)
            for event_id, occurred, data in rows
            for related in _decode_related(data).related
            if "headwater.resource.id" in related
        ]
        before = connection.total_changes
        await connection.executemany(
            "DELETE FROM event_resources WHERE resource_id = ? AND occurred = ? AND event_id = ?",
            keys,
        )
        resources += connection.total_changes - before
        await connection.executemany("DELETE FROM events WHERE id = ?", [(r[0],) for r in rows])
        removed += len(rows)
    return {"events": removed, "event_resources": resources}


async def _prune_ended_runs(
    connection: aiosqlite.Connection, cutoff: str, limit: int, step: int
) -> tuple[int, _Counts]:
    """Remove up to ``limit`` ended runs of one kind, each with its events and logs."""
    table, kind, select = _STEPS[step]
    async with connection.execute(select, (cutoff, limit)) as cursor:
        ids = [row[0] for row in await cursor.fetchall()]
    if not ids:
        return 0, {}
    counts = await _delete_run_events(connection, [f"headwater.{kind}.{i}" for i in ids])
    column = "task_run_id" if table == "task_runs" else "flow_run_id"
    before = connection.total_changes
    await connection.executemany(f"DELETE FROM logs WHERE {column} = ?", [(i,) for i in ids])
    counts["logs"] = connection.total_changes - before
    await connection.executemany(f"DELETE FROM {table} WHERE id = ?", [(i,) for i in ids])
    counts[table] = len(ids)
    return len(ids), counts


# The events about a run that is still stored stay with it: its state history is its
# state-change events. Those of pruned runs went with them.
_KEPT_RUNS = (
    "SELECT 'headwater.flow-run.' || id FROM flow_runs WHERE id IN (SELECT value FROM"
    " json_each(?1)) UNION ALL SELECT 'headwater.task-run.' || id FROM task_runs WHERE id IN"
    " (SELECT value FROM json_each(?1))"
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
            _KEPT_RUNS, (msgspec.json.encode(sorted(run_ids)).decode(),)
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
    # logs of runs still stored stay with them (their runs go with them, above)
    await connection.execute(
        "DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE timestamp < ?"
        " AND NOT EXISTS (SELECT 1 FROM flow_runs f WHERE f.id = logs.flow_run_id)"
        " AND NOT EXISTS (SELECT 1 FROM task_runs t WHERE t.id = logs.task_run_id)"
        " ORDER BY timestamp LIMIT ?)",
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

    # Ended runs first, each with everything that is theirs: task runs, then flow runs.
    for step in range(len(_STEPS)):
        while True:
            removed, counts = await database.write(
                partial(_prune_ended_runs, cutoff=cutoff, limit=batch_size, step=step)
            )
            add(counts)
            # Let a waiting writer take the lock before the next batch.
            await anyio.lowlevel.checkpoint()
            if removed < batch_size:
                break
    # Then other events by keyset (the events of kept runs stay behind the position).
    position = ("", "")
    while True:
        examined, counts, position = await database.write(
            partial(_prune_events, cutoff=cutoff, limit=batch_size, after=position)
        )
        add(counts)
        await anyio.lowlevel.checkpoint()
        if examined < batch_size:
            break
    while True:
        removed, counts = await database.write(
            partial(_prune_logs, cutoff=cutoff, limit=batch_size)
        )
        add(counts)
        await anyio.lowlevel.checkpoint()
        if removed < batch_size:
            break
    return result


async def delete_flow_run(database: Database, flow_run_id: str) -> int:
    """Delete one ended flow run with its task runs, their events and logs.

    Returns:
        The number of runs removed (0 when there is no such flow run).

    Raises:
        InvalidRunDeletion: the run is still in progress (its next event would bring it
            back); cancel it first.
    """

    async def work(connection: aiosqlite.Connection) -> int:
        async with connection.execute(
            "SELECT state_type, state_name FROM flow_runs WHERE id = ?", (flow_run_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return 0
        if row[0] in ("PENDING", "RUNNING", "CANCELLING"):
            raise InvalidRunDeletion(
                f"flow run {flow_run_id} is {row[1]}; cancel it before deleting it"
            )
        async with connection.execute(
            "SELECT id FROM task_runs WHERE flow_run_id = ?", (flow_run_id,)
        ) as cursor:
            task_ids = [task_row[0] for task_row in await cursor.fetchall()]
        await _delete_run_events(
            connection,
            [f"headwater.task-run.{i}" for i in task_ids] + [f"headwater.flow-run.{flow_run_id}"],
        )
        await connection.execute("DELETE FROM logs WHERE flow_run_id = ?", (flow_run_id,))
        await connection.execute("DELETE FROM task_runs WHERE flow_run_id = ?", (flow_run_id,))
        await connection.execute("DELETE FROM flow_runs WHERE id = ?", (flow_run_id,))
        return 1 + len(task_ids)

    return await database.write(work)
