"""Deployments in the database: register, read, pause, resume, delete.

A definition lives in ``deployments`` as JSON, with the columns lookups use. Every change
is one ``BEGIN IMMEDIATE`` transaction on this process's
:class:`~headwater.storage.sync_connection.SyncConnection`, followed by a
``headwater.deployment.created`` / ``.updated`` / ``.deleted`` event (``updated`` says
which fields changed, from what to what, as Prefect's does).

What a change does to runs already made (Prefect's rules, §2.5 of the reference):

- registering again, or editing, deletes the *future* auto-scheduled runs (Late ones are
  kept) and the scheduler makes them again from the new definition;
- pausing deletes every auto-scheduled run still waiting, Late ones included;
- deleting a deployment deletes all its waiting runs, requested ones too.

Runs in AwaitingConcurrencySlot and runs already claimed are never deleted.
"""

from __future__ import annotations

import datetime
import sqlite3
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec

from headwater.deployments.model import (
    DeploymentDefinition,
    keep_schedule_switches,
    parse_deployment_name,
)
from headwater.events.emit import emit_event
from headwater.exceptions import DeploymentNotFound
from headwater.ids import new_uuid
from headwater.storage.rows import flow_id, format_timestamp
from headwater.storage.sync_connection import get_sync_connection

__all__ = [
    "DeploymentRef",
    "FlowSummary",
    "apply_deployment",
    "delete_deployment",
    "deployments_stamp",
    "read_deployment",
    "read_deployments",
    "read_flows",
    "resolve",
    "set_paused",
    "set_schedule_active",
    "TRACKED_FIELDS",
]

DeploymentRef = str | uuid.UUID
"""``"flow/deployment"``, or a deployment id (as a UUID or its text)."""

TRACKED_FIELDS = (
    "description",
    "tags",
    "parameters",
    "parameter_schema",
    "enforce_parameter_schema",
    "entrypoint",
    "path",
    "paused",
    "version",
    "concurrency_limit",
    "catchup",
    "schedules",
    "triggers",
)
"""Fields whose change ``headwater.deployment.updated`` reports."""

_RESCHEDULING = frozenset({"parameters", "schedules", "paused", "tags", "catchup"})
_encode = msgspec.json.Encoder(order="deterministic").encode
_decode = msgspec.json.Decoder(DeploymentDefinition).decode
_UTC = datetime.timezone.utc


def _now() -> datetime.datetime:
    return datetime.datetime.now(_UTC)


def _row_to_definition(row: Sequence[Any]) -> DeploymentDefinition:
    definition = _decode(row[0])
    return msgspec.structs.replace(definition, paused=bool(row[1]))


def _find(connection: sqlite3.Connection, ref: DeploymentRef) -> DeploymentDefinition | None:
    if isinstance(ref, uuid.UUID):
        row = connection.execute(
            "SELECT definition, paused FROM deployments WHERE id = ?", (str(ref),)
        ).fetchone()
        return None if row is None else _row_to_definition(row)
    text = ref.strip()
    try:
        as_id = uuid.UUID(text)
    except ValueError:
        flow_name, name = parse_deployment_name(text)
        row = connection.execute(
            "SELECT definition, paused FROM deployments WHERE flow_name = ? AND name = ?",
            (flow_name, name),
        ).fetchone()
        return None if row is None else _row_to_definition(row)
    return _find(connection, as_id)


def _not_found(ref: DeploymentRef) -> DeploymentNotFound:
    return DeploymentNotFound(
        f"no deployment {str(ref)!r}; `headwater deployment ls` lists them"
        " (a name is '<flow name>/<deployment name>')"
    )


def resolve(connection: sqlite3.Connection, ref: DeploymentRef) -> DeploymentDefinition:
    """The deployment ``ref`` names, inside an open transaction; DeploymentNotFound if none."""
    found = _find(connection, ref)
    if found is None:
        raise _not_found(ref)
    return found


def read_deployment(ref: DeploymentRef) -> DeploymentDefinition:
    """The deployment named ``"flow/deployment"`` or with that id.

    Raises:
        DeploymentNotFound: there is none.
        DeploymentValidationError: ``ref`` is neither a name nor an id.
    """
    with get_sync_connection().read() as connection:
        return resolve(connection, ref)


def read_deployments(flow_name: str | None = None) -> list[DeploymentDefinition]:
    """Every deployment (of one flow), by flow name then name."""
    sql = "SELECT definition, paused FROM deployments"
    parameters: tuple[Any, ...] = ()
    if flow_name is not None:
        sql += " WHERE flow_name = ?"
        parameters = (flow_name,)
    with get_sync_connection().read() as connection:
        rows = connection.execute(sql + " ORDER BY flow_name, name", parameters).fetchall()
    return [_row_to_definition(row) for row in rows]


def deployments_stamp() -> tuple[str | None, int]:
    """Changes whenever any deployment is created, changed or deleted (cheap to read)."""
    with get_sync_connection().read() as connection:
        latest, count = connection.execute(
            "SELECT max(updated), count(*) FROM deployments"
        ).fetchone()
    return latest, count


class FlowSummary(msgspec.Struct, frozen=True):
    """A flow known to this database: from its runs or its deployments."""

    id: str
    name: str
    created: str
    deployments: int


def read_flows() -> list[FlowSummary]:
    """Every flow with a run or a deployment, by name."""
    with get_sync_connection().read() as connection:
        rows = connection.execute(
            "SELECT f.id, f.name, f.created,"
            " (SELECT count(*) FROM deployments d WHERE d.flow_name = f.name)"
            " FROM flows f ORDER BY f.name"
        ).fetchall()
    return [FlowSummary(*row) for row in rows]


def _changes(
    before: DeploymentDefinition, after: DeploymentDefinition
) -> dict[str, dict[str, Any]]:
    old = msgspec.to_builtins(before)
    new = msgspec.to_builtins(after)
    return {
        field: {"from": old.get(field), "to": new.get(field)}
        for field in TRACKED_FIELDS
        if old.get(field) != new.get(field)
    }


def _delete_waiting_runs(
    connection: sqlite3.Connection, deployment_id: str, *, future_only: bool, manual_too: bool
) -> int:
    sql = (
        "DELETE FROM flow_runs WHERE deployment_id = ? AND state_type = 'SCHEDULED'"
        " AND state_name IN ('Scheduled', 'Late') AND run_count = 0"
    )
    parameters: list[Any] = [deployment_id]
    if not manual_too:
        sql += " AND schedule_key IS NOT NULL"
    if future_only:
        sql += " AND state_name = 'Scheduled' AND expected_start_time > ?"
        parameters.append(format_timestamp(_now()))
    return connection.execute(sql, parameters).rowcount


def apply_deployment(
    definition: DeploymentDefinition, *, paused: bool | None = None
) -> DeploymentDefinition:
    """Register ``definition``: create it, or update the one of the same ``flow/name``.

    The stored id and creation time are kept; a schedule left ``active=None`` keeps its
    stored switch (never re-activated by a redeploy); ``paused`` None keeps the stored
    value. Future auto-scheduled runs are deleted when what makes them changed.

    Returns:
        The stored definition.
    """
    now = _now()
    with get_sync_connection().write() as connection:
        connection.execute(
            "INSERT OR IGNORE INTO flows (id, name, created) VALUES (?, ?, ?)",
            (flow_id(definition.flow_name), definition.flow_name, format_timestamp(now)),
        )
        before = _find(connection, f"{definition.flow_name}/{definition.name}")
        stored = msgspec.structs.replace(
            definition,
            id=definition.id if before is None else before.id,
            schedules=keep_schedule_switches(
                definition.schedules, [] if before is None else before.schedules
            ),
            paused=(
                paused
                if paused is not None
                else (definition.paused if before is None else before.paused)
            ),
            created=now if before is None else before.created,
            updated=now,
        )
        changes = {} if before is None else _changes(before, stored)
        if before is not None and not changes:
            return before
        if before is not None and _RESCHEDULING & set(changes):
            _delete_waiting_runs(connection, str(stored.id), future_only=True, manual_too=False)
        connection.execute(
            "INSERT INTO deployments (id, flow_name, name, paused, definition, created, updated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " paused = excluded.paused, definition = excluded.definition,"
            " updated = excluded.updated",
            (
                str(stored.id),
                stored.flow_name,
                stored.name,
                int(stored.paused),
                _encode(stored).decode(),
                format_timestamp(stored.created or now),
                format_timestamp(now),
            ),
        )
    _emit("created" if before is None else "updated", stored, changes)
    return stored


def set_paused(ref: DeploymentRef, paused: bool) -> DeploymentDefinition:
    """Pause (no more scheduled runs; every waiting auto-scheduled run deleted) or resume."""
    with get_sync_connection().write() as connection:
        before = resolve(connection, ref)
        if before.paused == paused:
            return before
        stored = msgspec.structs.replace(before, paused=paused, updated=_now())
        connection.execute(
            "UPDATE deployments SET paused = ?, definition = ?, updated = ? WHERE id = ?",
            (
                int(paused),
                _encode(stored).decode(),
                format_timestamp(stored.updated or _now()),
                str(stored.id),
            ),
        )
        if paused:
            _delete_waiting_runs(connection, str(stored.id), future_only=False, manual_too=False)
    _emit("updated", stored, _changes(before, stored))
    return stored


def set_schedule_active(ref: DeploymentRef, key: str, active: bool) -> DeploymentDefinition:
    """Switch one schedule (by :func:`schedule_key` or slug) on or off."""
    from headwater.deployments.schedules import schedule_key

    with get_sync_connection().write() as connection:
        before = resolve(connection, ref)
        found = False
        schedules = []
        for schedule in before.schedules:
            if key in (schedule_key(schedule), schedule.slug):
                schedule = msgspec.structs.replace(schedule, active=active)
                found = True
            schedules.append(schedule)
        if not found:
            known = ", ".join(schedule_key(schedule) for schedule in before.schedules) or "none"
            raise DeploymentNotFound(
                f"deployment {before.full_name} has no schedule {key!r} (it has: {known})"
            )
        stored = msgspec.structs.replace(before, schedules=schedules, updated=_now())
        connection.execute(
            "UPDATE deployments SET definition = ?, updated = ? WHERE id = ?",
            (_encode(stored).decode(), format_timestamp(_now()), str(stored.id)),
        )
        _delete_waiting_runs(connection, str(stored.id), future_only=True, manual_too=False)
    _emit("updated", stored, _changes(before, stored))
    return stored


def delete_deployment(ref: DeploymentRef) -> DeploymentDefinition:
    """Delete the deployment and every run of it still waiting; its history stays."""
    with get_sync_connection().write() as connection:
        before = resolve(connection, ref)
        _delete_waiting_runs(connection, str(before.id), future_only=False, manual_too=True)
        connection.execute("DELETE FROM deployments WHERE id = ?", (str(before.id),))
    _emit("deleted", before, {})
    return before


def _emit(kind: str, definition: DeploymentDefinition, changes: dict[str, Any]) -> None:
    payload: dict[str, Any] = {}
    if changes:
        payload = {"updated_fields": sorted(changes), "updates": changes}
    emit_event(
        f"headwater.deployment.{kind}",
        resource={
            "headwater.resource.id": f"headwater.deployment.{definition.id}",
            "headwater.resource.name": definition.full_name,
        },
        related=[
            {
                "headwater.resource.id": f"headwater.flow.{definition.flow_name}",
                "headwater.resource.role": "flow",
                "headwater.resource.name": definition.flow_name,
            }
        ],
        payload=payload,
        id=new_uuid(),
    )
