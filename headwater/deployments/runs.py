"""Runs of deployments in the database: create, schedule, mark late, claim, cancel, end.

Each operation is one ``BEGIN IMMEDIATE`` transaction that changes ``flow_runs`` rows
directly, so that it is atomic across processes:

- a run is *inserted* Scheduled; its idempotency key is unique per flow (an index), so two
  schedulers, a restarted serve or a retried request never make it twice;
- a launcher *claims* a run with one conditional update Scheduled → Pending, so exactly one
  launcher starts it;
- late marking, catch-up skips, concurrency waits and cancellations are conditional
  updates too (nothing changes a run that moved on meanwhile).

After the commit, each change is published on the bus as the same state-change event the
engine would publish (event id = state id), so persistence stores its history, the feed
shows it and automations see it; the row and the events agree by state id and time.
"""

from __future__ import annotations

import datetime
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import msgspec

from headwater.deployments.model import (
    CollisionStrategy,
    ConcurrencyLimitConfig,
    DeploymentDefinition,
    merge_parameters,
)
from headwater.deployments.schedules import run_times, schedule_key
from headwater.engine.adoption import Adoption, DeploymentFacts
from headwater.engine.naming import generate_slug
from headwater.engine.startup import ensure_started
from headwater.engine.states import State, StateType
from headwater.engine.transitions import RunIdentity, TransitionRecord
from headwater.events.bus import get_bus
from headwater.exceptions import DeploymentNotFound, DeploymentValidationError
from headwater.ids import new_uuid
from headwater.storage.rows import flow_id, format_timestamp, parse_timestamp
from headwater.storage.sync_connection import get_sync_connection

__all__ = [
    "RunRow",
    "SchedulingPolicy",
    "Claim",
    "claim_due",
    "create_run",
    "end_run",
    "mark_late",
    "next_due",
    "read_run",
    "request_cancellation",
    "resume_run",
    "suspend_run",
    "runs_to_stop",
    "schedule_runs",
    "validate_parameters",
]

_UTC = datetime.timezone.utc
_encode = msgspec.json.Encoder(order="deterministic").encode
_decode = msgspec.json.decode

_RUN_COLUMNS = (
    "id, name, flow_name, state_id, state_type, state_name, state_message, state_timestamp,"
    " run_count, parameters, tags, deployment_id, expected_start_time, schedule_key,"
    " idempotency_key, launcher, parent_flow_run_id"
)


class RunRow(msgspec.Struct, frozen=True, kw_only=True):
    """A flow run of a deployment, as the orchestration code reads it."""

    id: uuid.UUID
    name: str
    flow_name: str
    state_id: uuid.UUID
    state_type: StateType
    state_name: str
    state_message: str | None
    state_timestamp: datetime.datetime
    run_count: int
    parameters: dict[str, Any]
    tags: list[str]
    deployment_id: uuid.UUID | None
    expected_start_time: datetime.datetime | None
    schedule_key: str | None
    idempotency_key: str | None
    launcher: str | None
    parent_flow_run_id: uuid.UUID | None

    @property
    def state(self) -> State[Any]:
        """The current state, as a :class:`~headwater.engine.states.State` (no result)."""
        return State(
            type=self.state_type,
            name=self.state_name,
            message=self.state_message,
            id=self.state_id,
            timestamp=self.state_timestamp,
        )

    @property
    def is_final(self) -> bool:
        return self.state_type in (
            StateType.COMPLETED,
            StateType.FAILED,
            StateType.CANCELLED,
            StateType.CRASHED,
        )


def _row(values: Sequence[Any]) -> RunRow:
    return RunRow(
        id=uuid.UUID(values[0]),
        name=values[1],
        flow_name=values[2],
        state_id=uuid.UUID(values[3]),
        state_type=StateType(values[4]),
        state_name=values[5],
        state_message=values[6],
        state_timestamp=parse_timestamp(values[7]),
        run_count=values[8],
        parameters=_decode(values[9]),
        tags=_decode(values[10]),
        deployment_id=None if values[11] is None else uuid.UUID(values[11]),
        expected_start_time=None if values[12] is None else parse_timestamp(values[12]),
        schedule_key=values[13],
        idempotency_key=values[14],
        launcher=values[15],
        parent_flow_run_id=None if values[16] is None else uuid.UUID(values[16]),
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(_UTC)


# -- publishing ----------------------------------------------------------------------------
class _Change(msgspec.Struct, frozen=True):
    run: RunRow
    deployment_name: str | None
    state_id: uuid.UUID
    state_type: StateType
    state_name: str
    message: str | None
    timestamp: datetime.datetime
    fresh: bool = False  # the run's first state: no previous one


def _publish(changes: Iterable[_Change]) -> None:
    """Announce committed changes as the engine's state-change events."""
    changes = list(changes)
    if not changes:
        return
    ensure_started()  # persistence (or the forwarder) takes the events
    bus = get_bus()
    for change in changes:
        run = change.run
        deployment = (
            None
            if run.deployment_id is None
            else (run.deployment_id, change.deployment_name or str(run.deployment_id))
        )
        identity = RunIdentity(
            "flow-run",
            run.id,
            run.name,
            run.flow_name,
            parent_flow_run_id=run.parent_flow_run_id,
            tags=tuple(run.tags),
            parameters=run.parameters,
            deployment=deployment,
        )
        previous = (
            None
            if change.fresh
            else (
                run.state_id,
                run.state_type,
                run.state_name,
                run.state_message,
                run.state_timestamp,
            )
        )
        bus.publish(
            TransitionRecord(
                identity,
                run.run_count,
                previous,
                (
                    change.state_id,
                    change.state_type,
                    change.state_name,
                    change.message,
                    change.timestamp,
                ),
            )
        )


def _set_state(
    connection: sqlite3.Connection,
    run: RunRow,
    deployment_name: str | None,
    state_type: StateType,
    state_name: str,
    message: str | None,
    *,
    expect: Sequence[StateType],
    launcher: str | None = None,
    now: datetime.datetime | None = None,
) -> _Change | None:
    """Move ``run`` to a new state if it is still in one of ``expect`` (else None)."""
    now = now or _now()
    state_id = new_uuid()
    stamp = format_timestamp(now)
    final = state_type in (
        StateType.COMPLETED,
        StateType.FAILED,
        StateType.CANCELLED,
        StateType.CRASHED,
    )
    marks = ",".join("?" * len(expect))
    updated = connection.execute(
        "UPDATE flow_runs SET state_id = ?, state_type = ?, state_name = ?, state_message = ?,"
        " state_timestamp = ?, end_time = CASE WHEN ? THEN ? ELSE end_time END,"
        " launcher = coalesce(?, launcher)"
        f" WHERE id = ? AND state_id = ? AND state_type IN ({marks})",
        (
            str(state_id),
            state_type.value,
            state_name,
            message,
            stamp,
            final,
            stamp,
            launcher,
            str(run.id),
            str(run.state_id),
            *(state.value for state in expect),
        ),
    ).rowcount
    if not updated:
        return None
    return _Change(run, deployment_name, state_id, state_type, state_name, message, now)


# -- parameters ----------------------------------------------------------------------------
def validate_parameters(deployment: DeploymentDefinition, parameters: dict[str, Any]) -> None:
    """Check a run's merged parameters against the flow's schema (if enforced).

    Raises:
        DeploymentValidationError: names each parameter that is missing, unknown, or of
            the wrong type, and what was expected.
    """
    schema = deployment.parameter_schema
    if not deployment.enforce_parameter_schema or not schema:
        return
    import jsonschema

    try:
        validator = jsonschema.Draft7Validator(schema)
    except jsonschema.SchemaError:
        return  # a schema this version cannot read: the flow still validates on its own
    problems: list[str] = []
    known = sorted(schema.get("properties", {}))
    for error in sorted(validator.iter_errors(parameters), key=lambda e: list(e.path)):
        where = ".".join(str(part) for part in error.path)
        if error.validator == "additionalProperties":
            extra = sorted(set(parameters) - set(known))
            problems.append(f"unknown parameter(s) {extra}; {deployment.flow_name!r} takes {known}")
        elif error.validator == "required":
            problems.append(f"missing required parameter: {error.message.split()[0]}")
        else:
            problems.append(f"parameter {where!r}: {error.message}")
    if problems:
        raise DeploymentValidationError(
            f"parameters for a run of {deployment.full_name} do not fit the flow: "
            + "; ".join(problems)
        )


# -- creating runs -------------------------------------------------------------------------
def _insert(
    connection: sqlite3.Connection,
    deployment: DeploymentDefinition,
    *,
    run_id: uuid.UUID,
    name: str,
    parameters: dict[str, Any],
    tags: list[str],
    expected: datetime.datetime,
    now: datetime.datetime,
    key: str | None,
    idempotency_key: str | None,
    parent_flow_run_id: uuid.UUID | None = None,
    parent_task_run_id: uuid.UUID | None = None,
) -> RunRow | None:
    state_id = new_uuid()
    stamp = format_timestamp(now)
    cursor = connection.execute(
        "INSERT OR IGNORE INTO flow_runs (id, name, flow_name, flow_version,"
        " parent_flow_run_id, state_id, state_type, state_name, state_message,"
        " state_timestamp, run_count, parameters, tags, heartbeat, created, deployment_id,"
        " idempotency_key, expected_start_time, schedule_key, parent_task_run_id)"
        " VALUES (?, ?, ?, NULL, ?, ?, 'SCHEDULED', 'Scheduled', ?, ?, 0,"
        " ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            str(run_id),
            name,
            deployment.flow_name,
            None if parent_flow_run_id is None else str(parent_flow_run_id),
            str(state_id),
            "Flow run scheduled",
            stamp,
            _encode(parameters).decode(),
            _encode(tags).decode(),
            stamp,
            stamp,
            str(deployment.id),
            idempotency_key,
            format_timestamp(expected),
            key,
            None if parent_task_run_id is None else str(parent_task_run_id),
        ),
    )
    if not cursor.rowcount:
        return None
    return RunRow(
        id=run_id,
        name=name,
        flow_name=deployment.flow_name,
        state_id=state_id,
        state_type=StateType.SCHEDULED,
        state_name="Scheduled",
        state_message="Flow run scheduled",
        state_timestamp=now,
        run_count=0,
        parameters=parameters,
        tags=tags,
        deployment_id=deployment.id,
        expected_start_time=expected,
        schedule_key=key,
        idempotency_key=idempotency_key,
        launcher=None,
        parent_flow_run_id=parent_flow_run_id,
    )


def _fresh(run: RunRow, deployment: DeploymentDefinition) -> _Change:
    return _Change(
        run,
        deployment.full_name,
        run.state_id,
        StateType.SCHEDULED,
        "Scheduled",
        run.state_message,
        run.state_timestamp,
        fresh=True,
    )


def read_run(flow_run_id: uuid.UUID, connection: sqlite3.Connection | None = None) -> RunRow | None:
    """The stored row of one flow run (None if there is none)."""
    if connection is not None:
        row = connection.execute(
            f"SELECT {_RUN_COLUMNS} FROM flow_runs WHERE id = ?", (str(flow_run_id),)
        ).fetchone()
        return None if row is None else _row(row)
    with get_sync_connection().read() as reader:
        return read_run(flow_run_id, reader)


def create_run(
    deployment: DeploymentDefinition,
    *,
    parameters: dict[str, Any] | None = None,
    scheduled_time: datetime.datetime | None = None,
    flow_run_name: str | None = None,
    tags: Iterable[str] = (),
    idempotency_key: str | None = None,
    parent_flow_run_id: uuid.UUID | None = None,
    parent_task_run_id: uuid.UUID | None = None,
) -> tuple[RunRow, bool]:
    """Make a Scheduled run of ``deployment`` (due now unless ``scheduled_time``).

    Returns:
        The run, and whether it was made now (False: ``idempotency_key`` named one made
        before, which is returned unchanged).

    Raises:
        DeploymentValidationError: the parameters do not fit the flow's schema, or
            ``flow_run_name`` refers to a parameter that is not there.
    """
    merged = merge_parameters(deployment.parameters, parameters)
    validate_parameters(deployment, merged)
    now = _now()
    expected = now if scheduled_time is None else _aware(scheduled_time, "scheduled_time")
    name = generate_slug()
    if flow_run_name:
        try:
            name = flow_run_name.format(**merged)
        except (KeyError, IndexError, ValueError) as exc:
            raise DeploymentValidationError(
                f"flow_run_name {flow_run_name!r}: cannot fill it from the parameters"
                f" {sorted(merged)}: {exc}"
            ) from None
    run_tags = sorted(set(deployment.tags) | set(tags))
    with get_sync_connection().write() as connection:
        _ensure_flow(connection, deployment.flow_name, now)
        run = _insert(
            connection,
            deployment,
            run_id=new_uuid(),
            name=name,
            parameters=merged,
            tags=run_tags,
            expected=expected,
            now=now,
            key=None,
            idempotency_key=idempotency_key,
            parent_flow_run_id=parent_flow_run_id,
            parent_task_run_id=parent_task_run_id,
        )
        if run is None:
            existing = connection.execute(
                f"SELECT {_RUN_COLUMNS} FROM flow_runs WHERE flow_name = ? AND idempotency_key = ?",
                (deployment.flow_name, idempotency_key),
            ).fetchone()
            return _row(existing), False
    _publish([_fresh(run, deployment)])
    return run, True


def _aware(moment: datetime.datetime, what: str) -> datetime.datetime:
    if not isinstance(moment, datetime.datetime):
        raise DeploymentValidationError(f"{what}: expected a datetime, got {moment!r}")
    if moment.tzinfo is None:
        return moment.replace(tzinfo=_UTC)
    return moment.astimezone(_UTC)


def _ensure_flow(connection: sqlite3.Connection, flow_name: str, now: datetime.datetime) -> None:
    connection.execute(
        "INSERT OR IGNORE INTO flows (id, name, created) VALUES (?, ?, ?)",
        (flow_id(flow_name), flow_name, format_timestamp(now)),
    )


# -- the scheduler's work --------------------------------------------------------------------
class SchedulingPolicy(msgspec.Struct, frozen=True):
    """How far ahead runs are kept (Prefect's scheduler settings and defaults).

    A schedule has runs until it has at least ``min_runs`` waiting and the last is at
    least ``min_scheduled_time`` ahead, never more than ``max_runs`` or beyond
    ``max_scheduled_time``.
    """

    min_runs: int = 3
    max_runs: int = 100
    min_scheduled_time: datetime.timedelta = datetime.timedelta(hours=1)
    max_scheduled_time: datetime.timedelta = datetime.timedelta(days=100)


def _scheduled_key(deployment: DeploymentDefinition, key: str, moment: datetime.datetime) -> str:
    # By the deployment's name and the schedule's definition, never a row id: the same
    # schedule registered again makes the same keys (Prefect #17703, #20886).
    return f"scheduled {deployment.full_name} {key} {format_timestamp(moment)}"


def schedule_runs(
    deployments: Iterable[DeploymentDefinition],
    now: datetime.datetime,
    policy: SchedulingPolicy | None = None,
) -> int:
    """Top up the waiting auto-scheduled runs of each active schedule; returns how many
    runs were made. Paused deployments and inactive schedules get none."""
    policy = policy or SchedulingPolicy()
    wanted = [d for d in deployments if not d.paused and any(s.is_active for s in d.schedules)]
    if not wanted:
        return 0
    made: list[_Change] = []
    with get_sync_connection().write() as connection:
        waiting = _waiting_by_schedule(connection, [str(d.id) for d in wanted], now)
        for deployment in wanted:
            _ensure_flow(connection, deployment.flow_name, now)
            for schedule in deployment.schedules:
                if not schedule.is_active:
                    continue
                key = schedule_key(schedule)
                count, latest = waiting.get((str(deployment.id), key), (0, None))
                horizon = now + policy.min_scheduled_time
                if count >= policy.min_runs and latest is not None and latest >= horizon:
                    continue
                start = now if latest is None else latest + datetime.timedelta(microseconds=1)
                times = run_times(
                    schedule.schedule,
                    start,
                    now + policy.max_scheduled_time,
                    limit=max(0, policy.max_runs - count),
                )
                chosen: list[datetime.datetime] = []
                for moment in times:
                    if count + len(chosen) >= policy.min_runs and moment > horizon:
                        break
                    chosen.append(moment)
                parameters = merge_parameters(deployment.parameters, schedule.parameters)
                tags = sorted({"auto-scheduled", *deployment.tags})
                for moment in chosen:
                    run = _insert(
                        connection,
                        deployment,
                        run_id=new_uuid(),
                        name=generate_slug(),
                        parameters=parameters,
                        tags=tags,
                        expected=moment,
                        now=now,
                        key=key,
                        idempotency_key=_scheduled_key(deployment, key, moment),
                    )
                    if run is not None:
                        made.append(_fresh(run, deployment))
    _publish(made)
    return len(made)


def _waiting_by_schedule(
    connection: sqlite3.Connection, deployment_ids: list[str], now: datetime.datetime
) -> dict[tuple[str, str], tuple[int, datetime.datetime | None]]:
    rows = _over_ids(
        connection,
        "SELECT deployment_id, schedule_key, count(*), max(expected_start_time)"
        " FROM flow_runs WHERE deployment_id IN ({ids}) AND state_type = 'SCHEDULED'"
        " AND state_name = 'Scheduled' AND schedule_key IS NOT NULL"
        " AND expected_start_time >= ? GROUP BY deployment_id, schedule_key",
        deployment_ids,
        format_timestamp(now),
    )
    return {
        (deployment_id, key): (count, parse_timestamp(latest))
        for deployment_id, key, count, latest in rows
    }


_IDS_PER_QUERY = 500  # well under SQLite's limit of bound parameters


def _over_ids(
    connection: sqlite3.Connection, sql: str, ids: list[str], *parameters: Any
) -> Iterator[tuple[Any, ...]]:
    """The rows of ``sql`` for ``ids``, asked ``_IDS_PER_QUERY`` at a time.

    ``sql`` holds ``{ids}`` where the ``IN`` list goes, before its other ``?`` parameters.
    """
    for start in range(0, len(ids), _IDS_PER_QUERY):
        chunk = ids[start : start + _IDS_PER_QUERY]
        yield from connection.execute(
            sql.format(ids=",".join("?" * len(chunk))), (*chunk, *parameters)
        )


def _runs_over_ids(
    connection: sqlite3.Connection, condition: str, ids: list[str], *parameters: Any
) -> list[RunRow]:
    """Runs whose ``deployment_id IN {ids}`` (or other ``condition``) holds, as RunRows."""
    sql = f"SELECT {_RUN_COLUMNS} FROM flow_runs AS r WHERE {condition}"
    return [_row(values) for values in _over_ids(connection, sql, ids, *parameters)]


def mark_late(
    deployments: dict[str, DeploymentDefinition],
    now: datetime.datetime,
    after: datetime.timedelta = datetime.timedelta(seconds=15),
) -> int:
    """Scheduled runs not started ``after`` their time become Late (Prefect's late_runs);
    suspended runs past their timeout fail (Prefect's pause_expirations)."""
    if not deployments:
        return 0
    changes: list[_Change] = []
    ids = list(deployments)
    with get_sync_connection().write() as connection:
        late = _runs_over_ids(
            connection,
            "deployment_id IN ({ids}) AND state_type = 'SCHEDULED' AND state_name = 'Scheduled'"
            " AND expected_start_time <= ? LIMIT 400",
            ids,
            format_timestamp(now - after),
        )
        expired = _runs_over_ids(
            connection,
            "deployment_id IN ({ids}) AND state_type = 'PAUSED' AND expected_start_time <= ?"
            " LIMIT 200",
            ids,
            format_timestamp(now),
        )
        late_message = f"Not started within {after.total_seconds():g} s of its scheduled time"
        wanted = [(run, StateType.SCHEDULED, "Late", late_message) for run in late]
        wanted += [
            (run, StateType.FAILED, "Failed", "The flow was paused and never resumed.")
            for run in expired
        ]
        for run, state_type, name, message in wanted:
            change = _set_state(
                connection,
                run,
                deployments[str(run.deployment_id)].full_name,
                state_type,
                name,
                message,
                expect=(run.state_type,),
                now=now,
            )
            if change is not None:
                changes.append(change)
    _publish(changes)
    return len(changes)


# -- launching -------------------------------------------------------------------------------
class Claim(msgspec.Struct, frozen=True):
    """A run a launcher now owns (Pending), with what its process needs to adopt it."""

    deployment: DeploymentDefinition
    adoption: Adoption


def _waiting_due(
    connection: sqlite3.Connection,
    deployment_ids: list[str],
    now: datetime.datetime,
    *,
    limit: int,
    after: tuple[str, str] | None = None,
) -> list[RunRow]:
    """Due waiting runs, oldest first, at most ``limit``, after the ``(time, id)`` cursor."""
    condition = "" if after is None else " AND (expected_start_time, id) > (?, ?)"
    found = _runs_over_ids(
        connection,
        "deployment_id IN ({ids}) AND state_type = 'SCHEDULED' AND expected_start_time <= ?"
        f"{condition} ORDER BY expected_start_time, id LIMIT ?",
        deployment_ids,
        format_timestamp(now),
        *(after or ()),
        limit,
    )
    found.sort(key=lambda run: (run.expected_start_time or now, str(run.id)))
    return found[:limit]


def _apply_catchup(
    connection: sqlite3.Connection,
    deployments: dict[str, DeploymentDefinition],
    now: datetime.datetime,
) -> list[_Change]:
    """Skip (Cancelled) the due auto-scheduled runs that catch-up policies say to skip.

    The queries find only runs to skip (a newer due run of the same deployment exists, or
    the run is older than the allowed lateness), so a launcher that is keeping up pays one
    index probe per deployment, not a read of every due run.
    """
    changes: list[_Change] = []
    latest = [d for d, dep in deployments.items() if dep.catchup == "latest"]
    by_lateness: dict[datetime.timedelta, list[str]] = {}
    for deployment_id, deployment in deployments.items():
        if deployment.catchup == "skip" and deployment.catchup_after is not None:
            by_lateness.setdefault(deployment.catchup_after, []).append(deployment_id)
    stamp = format_timestamp(now)
    found: list[tuple[RunRow, str]] = []
    newer_due = _runs_over_ids(
        connection,
        "deployment_id IN ({ids}) AND state_type = 'SCHEDULED' AND schedule_key IS NOT NULL"
        " AND expected_start_time <= ? AND EXISTS (SELECT 1 FROM flow_runs AS n"
        " WHERE n.deployment_id = r.deployment_id AND n.state_type = 'SCHEDULED'"
        " AND n.schedule_key IS NOT NULL AND n.expected_start_time <= ?"
        " AND n.expected_start_time > r.expected_start_time) LIMIT 10000",
        latest,
        stamp,
        stamp,
    )
    reason = "Skipped: a later scheduled run of this deployment is due (catch-up 'latest')"
    found += [(run, reason) for run in newer_due]
    for after, ids in by_lateness.items():
        too_late = _runs_over_ids(
            connection,
            "deployment_id IN ({ids}) AND state_type = 'SCHEDULED' AND schedule_key IS NOT NULL"
            " AND expected_start_time < ? LIMIT 10000",
            ids,
            format_timestamp(now - after),
        )
        reason = f"Skipped: more than {after.total_seconds():g} s late (catch-up policy)"
        found += [(run, reason) for run in too_late]
    for run, reason in found:
        deployment = deployments[str(run.deployment_id)]
        change = _set_state(
            connection,
            run,
            deployment.full_name,
            StateType.CANCELLED,
            "Cancelled",
            reason,
            expect=(StateType.SCHEDULED,),
            now=now,
        )
        if change is not None:
            changes.append(change)
    return changes


def _active_counts(connection: sqlite3.Connection, deployment_ids: list[str]) -> dict[str, int]:
    rows = _over_ids(
        connection,
        "SELECT deployment_id, count(*) FROM flow_runs WHERE deployment_id IN ({ids})"
        " AND state_type IN ('PENDING', 'RUNNING', 'CANCELLING') GROUP BY deployment_id",
        deployment_ids,
    )
    return dict(rows)


def claim_due(
    deployments: dict[str, DeploymentDefinition],
    now: datetime.datetime,
    launcher: str,
    capacity: int,
) -> list[Claim]:
    """Claim up to ``capacity`` due runs of these deployments for ``launcher``.

    Oldest first. Before claiming, a deployment's catch-up policy skips what it says to
    skip, and its concurrency limit holds back (AwaitingConcurrencySlot) or cancels
    (CANCEL_NEW) what does not fit. Each claim is Scheduled → Pending, conditional on the
    run being unchanged, so no run is ever claimed twice.
    """
    if not deployments:
        return []
    claims: list[Claim] = []
    with get_sync_connection().write() as connection:
        changes = _apply_catchup(connection, deployments, now)
        limited = [d for d, dep in deployments.items() if dep.concurrency_limit]
        active = _active_counts(connection, limited) if limited else {}
        page = max(2 * capacity, 16)
        cursor: tuple[str, str] | None = None
        while len(claims) < capacity:
            due = _waiting_due(connection, list(deployments), now, limit=page, after=cursor)
            if not due:
                break
            last = due[-1]
            cursor = (format_timestamp(last.expected_start_time or now), str(last.id))
            _claim_page(
                connection, due, deployments, active, launcher, capacity, now, changes, claims
            )
            if len(due) < page:
                break
    _publish(changes)
    return claims


def _claim_page(
    connection: sqlite3.Connection,
    due: list[RunRow],
    deployments: dict[str, DeploymentDefinition],
    active: dict[str, int],
    launcher: str,
    capacity: int,
    now: datetime.datetime,
    changes: list[_Change],
    claims: list[Claim],
) -> None:
    """Claim from one page of due runs, holding back what a concurrency limit does not fit."""
    for run in due:
        deployment = deployments[str(run.deployment_id)]
        limit = deployment.concurrency_limit
        if limit is not None and active.get(str(deployment.id), 0) >= limit.limit:
            change = _hold_back(connection, run, deployment, limit, now)
            if change is not None:
                changes.append(change)
            continue
        if len(claims) >= capacity:
            continue
        change = _set_state(
            connection,
            run,
            deployment.full_name,
            StateType.PENDING,
            "Pending",
            None,
            expect=(StateType.SCHEDULED,),
            launcher=launcher,
            now=now,
        )
        if change is None:
            continue
        changes.append(change)
        active[str(deployment.id)] = active.get(str(deployment.id), 0) + 1
        claims.append(Claim(deployment, _adoption(connection, run, change, deployment)))


def _hold_back(
    connection: sqlite3.Connection,
    run: RunRow,
    deployment: DeploymentDefinition,
    limit: ConcurrencyLimitConfig,
    now: datetime.datetime,
) -> _Change | None:
    """A due run its deployment's full limit does not fit: it waits, or ends (CANCEL_NEW)."""
    message = "Deployment concurrency limit reached."
    if limit.collision_strategy is CollisionStrategy.CANCEL_NEW:
        return _set_state(
            connection,
            run,
            deployment.full_name,
            StateType.CANCELLED,
            "Cancelled",
            message,
            expect=(StateType.SCHEDULED,),
            now=now,
        )
    if run.state_name == "AwaitingConcurrencySlot":
        return None  # already waiting; it is looked at again when a slot frees
    return _set_state(
        connection,
        run,
        deployment.full_name,
        StateType.SCHEDULED,
        "AwaitingConcurrencySlot",
        message,
        expect=(StateType.SCHEDULED,),
        now=now,
    )


def _adoption(
    connection: sqlite3.Connection,
    run: RunRow,
    claimed: _Change,
    deployment: DeploymentDefinition,
) -> Adoption:
    return Adoption(
        flow_run_id=run.id,
        name=run.name,
        tags=run.tags,
        parameters=run.parameters,
        state_id=claimed.state_id,
        state_timestamp=claimed.timestamp,
        run_count=_attempts(connection, run),
        scheduled_start_time=run.expected_start_time,
        parent_flow_run_id=run.parent_flow_run_id,
        deployment=DeploymentFacts(
            id=deployment.id,
            name=deployment.full_name,
            flow_run_id=run.id,
            parameters=deployment.parameters,
            version=deployment.version,
        ),
    )


def _attempts(connection: sqlite3.Connection, run: RunRow) -> int:
    """Attempts a run has made: for a resumed run, counted from its Running events too (an
    attempt's own events may have been written after the Suspended state, and lost to the
    row, which keeps the newest state only)."""
    if run.state_name != "Resuming":
        return run.run_count
    (count,) = connection.execute(
        "SELECT count(*) FROM events WHERE resource_id = ?"
        " AND event = 'headwater.flow-run.Running'",
        (f"headwater.flow-run.{run.id}",),
    ).fetchone()
    return max(run.run_count, count)


def next_due(deployment_ids: Iterable[str]) -> datetime.datetime | None:
    """When the earliest waiting run of these deployments is due (None: none waits)."""
    with get_sync_connection().read() as connection:
        found = [
            value
            for (value,) in _over_ids(
                connection,
                "SELECT min(expected_start_time) FROM flow_runs"
                " WHERE deployment_id IN ({ids}) AND state_type = 'SCHEDULED'",
                list(deployment_ids),
            )
            if value is not None
        ]
    return parse_timestamp(min(found)) if found else None  # fixed-width text sorts as time


def runs_to_stop(launcher: str, run_ids: Iterable[uuid.UUID]) -> list[RunRow]:
    """Of the runs this launcher is running (``run_ids``), those someone asked to cancel
    (Cancelling) or to suspend (Suspended): looked up by id, never a scan."""
    with get_sync_connection().read() as connection:
        return _runs_over_ids(
            connection,
            "id IN ({ids}) AND launcher = ? AND (state_type = 'CANCELLING'"
            " OR (state_type = 'PAUSED' AND state_name = 'Suspended'))",
            [str(run_id) for run_id in run_ids],
            launcher,
        )


def request_cancellation(flow_run_id: uuid.UUID, message: str) -> RunRow | None:
    """Ask for a run to be cancelled, wherever it runs.

    A run still waiting (Scheduled, Late, AwaitingConcurrencySlot, Paused) goes straight to
    Cancelled; a claimed or running one goes Cancelling, and its launcher stops its
    process. Returns the run as it was, or None if there is no such run or it has ended.

    Raises:
        DeploymentValidationError: the run is in progress but no launcher started it (a
            script's own flow run): recording Cancelling would stop nothing.
    """
    with get_sync_connection().write() as connection:
        run = read_run(flow_run_id, connection)
        if run is None or run.is_final or run.state_type is StateType.CANCELLING:
            return run if run is not None and not run.is_final else None
        waiting = run.state_type in (StateType.SCHEDULED, StateType.PAUSED)
        if not waiting and run.launcher is None:
            raise DeploymentValidationError(
                f"flow run {flow_run_id} ({run.state_name}) was not started by a serve process,"
                " so nothing here can stop it; cancel it from the code that runs it"
            )
        change = _set_state(
            connection,
            run,
            _deployment_name(connection, run),
            StateType.CANCELLED if waiting else StateType.CANCELLING,
            "Cancelled" if waiting else "Cancelling",
            message,
            expect=(run.state_type,),
        )
    if change is not None:
        _publish([change])
    return run


def suspend_run(flow_run_id: uuid.UUID, message: str, timeout_seconds: float | None) -> RunRow:
    """Suspend a claimed or running run of a deployment: its launcher stops its process
    and the run waits, Suspended, until :func:`resume_run` (or fails after the timeout).

    Raises:
        DeploymentError: there is no such run, it is not a deployment's, or it is not
            in progress.
    """
    with get_sync_connection().write() as connection:
        run = read_run(flow_run_id, connection)
        if run is None:
            raise DeploymentNotFound(f"no flow run {flow_run_id}")
        if run.deployment_id is None:
            raise DeploymentValidationError(
                f"flow run {flow_run_id} is not a run of a deployment: only those can be"
                " suspended (they start again in a new process when resumed)"
            )
        if run.state_type not in (StateType.PENDING, StateType.RUNNING):
            raise DeploymentValidationError(
                f"flow run {flow_run_id} is {run.state_name}; only a Pending or Running run"
                " can be suspended"
            )
        change = _set_state(
            connection,
            run,
            _deployment_name(connection, run),
            StateType.PAUSED,
            "Suspended",
            message,
            expect=(run.state_type,),
        )
        if change is not None and timeout_seconds is not None:
            connection.execute(
                "UPDATE flow_runs SET expected_start_time = ? WHERE id = ?",
                (
                    format_timestamp(
                        change.timestamp + datetime.timedelta(seconds=timeout_seconds)
                    ),
                    str(run.id),
                ),
            )
    if change is None:
        raise DeploymentValidationError(f"flow run {flow_run_id} changed meanwhile; try again")
    _publish([change])
    return run


def resume_run(flow_run_id: uuid.UUID) -> RunRow:
    """Resume a Suspended run: it is due again (Resuming) and a launcher starts it anew.

    Raises:
        DeploymentError: there is no such run, or it is not suspended.
    """
    with get_sync_connection().write() as connection:
        run = read_run(flow_run_id, connection)
        if run is None:
            raise DeploymentNotFound(f"no flow run {flow_run_id}")
        if run.state_type is not StateType.PAUSED or run.deployment_id is None:
            raise DeploymentValidationError(
                f"flow run {flow_run_id} is {run.state_name}; only a suspended run of a"
                " deployment can be resumed this way"
            )
        change = _set_state(
            connection,
            run,
            _deployment_name(connection, run),
            StateType.SCHEDULED,
            "Resuming",
            None,
            expect=(StateType.PAUSED,),
        )
        if change is not None:
            connection.execute(
                "UPDATE flow_runs SET expected_start_time = ?, launcher = NULL WHERE id = ?",
                (format_timestamp(change.timestamp), str(run.id)),
            )
    if change is None:
        raise DeploymentValidationError(f"flow run {flow_run_id} changed meanwhile; try again")
    _publish([change])
    return run


def _deployment_name(connection: sqlite3.Connection, run: RunRow) -> str | None:
    if run.deployment_id is None:
        return None
    row = connection.execute(
        "SELECT flow_name || '/' || name FROM deployments WHERE id = ?", (str(run.deployment_id),)
    ).fetchone()
    return None if row is None else row[0]


def end_run(
    flow_run_id: uuid.UUID, state_type: StateType, state_name: str, message: str
) -> RunRow | None:
    """Give a run whose process is gone a final state, unless it already has one.

    Returns the run as it now is (None if there is no such run).
    """
    with get_sync_connection().write() as connection:
        run = read_run(flow_run_id, connection)
        if run is None or run.is_final:
            return run
        change = _set_state(
            connection,
            run,
            _deployment_name(connection, run),
            state_type,
            state_name,
            message,
            expect=(run.state_type,),
        )
    if change is not None:
        _publish([change])
    return read_run(flow_run_id)
