"""Automations in the database: definitions, and the checkpointed state of their triggers.

Definitions live in ``automations`` (the whole definition as JSON, plus the columns the
CLI and the reactor look up). Every change is followed by a ``headwater.automation.created``
/ ``.updated`` / ``.deleted`` event whose payload holds the full automation (as Prefect's);
a reactor in this process reloads from that event, one elsewhere at its next resync.

Trigger state lives in ``automation_state``, one row per open bucket, unresolved proactive
firing or stored child firing, owned by the reactor that holds it in memory (see
:mod:`headwater.automations.checkpoint`).

Each function takes an open :class:`~headwater.storage.database.Database`, or opens the
one the settings name for the duration of the call.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite
import msgspec

from headwater import lifecycle
from headwater.automations.model import AutomationDefinition, parse_automation, validate_automation
from headwater.events.emit import emit_event
from headwater.exceptions import (
    AutomationNameTaken,
    AutomationNotFound,
    AutomationValidationError,
)
from headwater.storage.database import Database
from headwater.storage.rows import format_timestamp

__all__ = [
    "StateRow",
    "any_enabled",
    "automation_versions",
    "create_automation",
    "delete_automation",
    "read_automation",
    "read_automation_by_name",
    "read_automations",
    "set_enabled",
    "update_automation",
    "adopt_state",
    "write_state",
    "release_state",
]

_encode = msgspec.json.Encoder().encode

StateRow = tuple[str, str, str, str, str]
"""``(automation_id, trigger_path, kind, key, data)`` of one checkpointed state entry."""


def _now() -> str:
    return format_timestamp(datetime.datetime.now(datetime.timezone.utc))


@asynccontextmanager
async def _database(database: Database | None) -> AsyncIterator[Database]:
    if database is not None:
        yield database
        return
    opened = await Database.open()
    try:
        yield opened
    finally:
        await opened.close()


def _emit_change(kind: str, automation: AutomationDefinition) -> None:
    emit_event(
        f"headwater.automation.{kind}",
        resource={
            "headwater.resource.id": f"headwater.automation.{automation.id}",
            "headwater.resource.name": automation.name,
        },
        payload={"automation": msgspec.to_builtins(automation)},
    )
    lifecycle.forget("automations")  # a reactor that found none here looks again


async def _name_taken(connection: aiosqlite.Connection, name: str, other_than: str) -> bool:
    async with connection.execute(
        "SELECT 1 FROM automations WHERE name = ? AND id != ?", (name, other_than)
    ) as cursor:
        return await cursor.fetchone() is not None


async def create_automation(
    automation: AutomationDefinition, database: Database | None = None
) -> AutomationDefinition:
    """Validate and store a new automation; returns the stored copy (with its ``id``).

    Raises:
        AutomationValidationError: the definition breaks the rules; nothing is stored.
        AutomationNameTaken: another automation has that name.
    """
    checked = validate_automation(automation)
    checked.id = automation.id or uuid.uuid4()
    row_id, now = str(checked.id), _now()

    async def work(connection: aiosqlite.Connection) -> None:
        if await _name_taken(connection, checked.name, row_id):
            raise AutomationNameTaken(f"an automation named {checked.name!r} already exists")
        await connection.execute(
            "INSERT INTO automations (id, name, enabled, definition, created, updated)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (row_id, checked.name, int(checked.enabled), _encode(checked).decode(), now, now),
        )

    async with _database(database) as db:
        await _check_blocks(db, checked)
        await db.write(work)
    _emit_change("created", checked)
    return checked


async def _check_blocks(database: Database, automation: AutomationDefinition) -> None:
    """Refuse an automation whose notifications name a block that does not exist.

    Raises:
        AutomationValidationError: naming the action's field and the missing block.
    """
    from headwater.automations.actions_model import SendNotification
    from headwater.blocks.store import read_document, read_document_by_id

    for field in ("actions", "actions_on_trigger", "actions_on_resolve"):
        for index, action in enumerate(getattr(automation, field)):
            if not isinstance(action, SendNotification):
                continue
            if action.block:
                slug, _, name = action.block.partition("/")
                found = await read_document(database, slug, name)
                what, where = f"block {action.block!r}", f"{field}[{index}].block"
            else:
                assert action.block_document_id is not None
                found = await read_document_by_id(database, action.block_document_id)
                what = f"block document {action.block_document_id}"
                where = f"{field}[{index}].block_document_id"
            if found is None:
                raise AutomationValidationError(
                    where, f"no {what} exists; save the block first (headwater block ls)"
                )


async def update_automation(
    automation: AutomationDefinition, database: Database | None = None
) -> None:
    """Replace the stored definition that has ``automation.id``.

    Raises:
        AutomationNotFound: no automation has that id (or it has none).
        AutomationNameTaken: the new name belongs to another automation.
    """
    if automation.id is None:
        raise AutomationNotFound("this automation has no id: create() it first")
    checked = validate_automation(automation)
    row_id = str(checked.id)

    async def work(connection: aiosqlite.Connection) -> int:
        if await _name_taken(connection, checked.name, row_id):
            raise AutomationNameTaken(f"an automation named {checked.name!r} already exists")
        cursor = await connection.execute(
            "UPDATE automations SET name = ?, enabled = ?, definition = ?, updated = ?"
            " WHERE id = ?",
            (checked.name, int(checked.enabled), _encode(checked).decode(), _now(), row_id),
        )
        return cursor.rowcount

    async with _database(database) as db:
        await _check_blocks(db, checked)
        if not await db.write(work):
            raise AutomationNotFound(f"no automation has id {row_id}")
    _emit_change("updated", checked)


async def delete_automation(automation_id: uuid.UUID, database: Database | None = None) -> bool:
    """Delete an automation and its trigger state; False when there was none."""
    row_id = str(automation_id)

    async def work(connection: aiosqlite.Connection) -> str | None:
        async with connection.execute(
            "SELECT definition FROM automations WHERE id = ?", (row_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        await connection.execute("DELETE FROM automations WHERE id = ?", (row_id,))
        await connection.execute("DELETE FROM automation_state WHERE automation_id = ?", (row_id,))
        return str(row[0])

    async with _database(database) as db:
        definition = await db.write(work)
    if definition is None:
        return False
    _emit_change("deleted", _decode(definition))
    return True


async def set_enabled(
    automation_id: uuid.UUID, enabled: bool, database: Database | None = None
) -> bool:
    """Enable or disable an automation (pause/resume); False when there is none."""
    row_id = str(automation_id)

    async def work(connection: aiosqlite.Connection) -> str | None:
        async with connection.execute(
            "SELECT definition FROM automations WHERE id = ?", (row_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        automation = _decode(row[0])
        automation.enabled = enabled
        definition = _encode(automation).decode()
        await connection.execute(
            "UPDATE automations SET enabled = ?, definition = ?, updated = ? WHERE id = ?",
            (int(enabled), definition, _now(), row_id),
        )
        return definition

    async with _database(database) as db:
        definition = await db.write(work)
    if definition is None:
        return False
    _emit_change("updated", _decode(definition))
    return True


def _decode(definition: str | bytes) -> AutomationDefinition:
    return parse_automation(msgspec.json.decode(definition))


async def _select(database: Database, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    async with database.read() as reader, reader.execute(sql, params) as cursor:
        return list(await cursor.fetchall())


async def read_automation(
    automation_id: uuid.UUID, database: Database | None = None
) -> AutomationDefinition:
    """The automation with this id.

    Raises:
        AutomationNotFound: there is none.
    """
    async with _database(database) as db:
        rows = await _select(
            db, "SELECT definition FROM automations WHERE id = ?", (str(automation_id),)
        )
    if not rows:
        raise AutomationNotFound(f"Automation with id {str(automation_id)!r} not found")
    return _decode(rows[0][0])


async def read_automation_by_name(
    name: str, database: Database | None = None
) -> AutomationDefinition:
    """The automation with this name.

    Raises:
        AutomationNotFound: there is none.
    """
    async with _database(database) as db:
        rows = await _select(db, "SELECT definition FROM automations WHERE name = ?", (name,))
    if not rows:
        raise AutomationNotFound(f"Automation with name {name!r} not found")
    return _decode(rows[0][0])


async def read_automations(
    database: Database | None = None, *, enabled_only: bool = False
) -> list[AutomationDefinition]:
    """Every stored automation (only enabled ones if asked), by name."""
    sql = "SELECT definition FROM automations"
    if enabled_only:
        sql += " WHERE enabled = 1"
    async with _database(database) as db:
        rows = await _select(db, sql + " ORDER BY name")
    return [_decode(row[0]) for row in rows]


async def any_enabled(database: Database) -> bool:
    """Whether at least one enabled automation exists (the cheap check before starting)."""
    return bool(await _select(database, "SELECT 1 FROM automations WHERE enabled = 1 LIMIT 1"))


async def automation_versions(database: Database) -> dict[uuid.UUID, str]:
    """Each automation's id and last update time, to spot changes made elsewhere."""
    rows = await _select(database, "SELECT id, updated FROM automations")
    return {uuid.UUID(row[0]): row[1] for row in rows}


# -- trigger state checkpoints ------------------------------------------------------------


async def adopt_state(database: Database, owner: str, abandoned: Sequence[str]) -> list[StateRow]:
    """Take over the state of ``abandoned`` owners (and released state); return ours.

    One transaction: two reactors starting at once cannot adopt the same rows.
    """

    async def work(connection: aiosqlite.Connection) -> list[StateRow]:
        for previous in (*abandoned, ""):
            await connection.execute(
                "UPDATE automation_state SET owner = ? WHERE owner = ?", (owner, previous)
            )
        async with connection.execute(
            "SELECT automation_id, trigger_path, kind, key, data FROM automation_state"
            " WHERE owner = ?",
            (owner,),
        ) as cursor:
            return [tuple(row) for row in await cursor.fetchall()]  # type: ignore[misc]

    return await database.write(work)


async def state_owners(database: Database) -> list[str]:
    """Every owner that holds checkpointed state now."""
    rows = await _select(database, "SELECT DISTINCT owner FROM automation_state")
    return [row[0] for row in rows]


async def write_state(
    database: Database,
    owner: str,
    upserts: Sequence[StateRow],
    deletes: Sequence[tuple[str, str, str, str]],
) -> None:
    """Write one checkpoint: changed entries and removed ones, in one transaction."""
    now = _now()

    async def work(connection: aiosqlite.Connection) -> None:
        if deletes:
            await connection.executemany(
                "DELETE FROM automation_state WHERE automation_id = ? AND trigger_path = ?"
                " AND kind = ? AND key = ?",
                deletes,
            )
        if upserts:
            await connection.executemany(
                "INSERT INTO automation_state"
                " (automation_id, trigger_path, kind, key, owner, data, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (automation_id, trigger_path, kind, key) DO UPDATE SET"
                " owner = excluded.owner, data = excluded.data, updated = excluded.updated",
                [(*row[:4], owner, row[4], now) for row in upserts],
            )

    await database.write(work)


async def release_state(database: Database, owner: str) -> None:
    """Hand our state over to whichever reactor starts next (a clean stop)."""

    async def work(connection: aiosqlite.Connection) -> None:
        await connection.execute("UPDATE automation_state SET owner = '' WHERE owner = ?", (owner,))

    await database.write(work)


async def forget_state(database: Database, automation_id: uuid.UUID) -> None:
    """Drop the checkpointed state of one automation (disabled, changed or deleted)."""

    async def work(connection: aiosqlite.Connection) -> None:
        await connection.execute(
            "DELETE FROM automation_state WHERE automation_id = ?", (str(automation_id),)
        )

    await database.write(work)
