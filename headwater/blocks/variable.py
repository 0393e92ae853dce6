"""``Variable``: named JSON values for flows, deployments and automations (``prefect.variables``).

``Variable.set("region", "eu-west-1")``, ``Variable.get("region", default="us-east-1")``,
``Variable.unset("region")``, with async twins ``aset``/``aget``/``aunset``. Names are at
most 255 lowercase letters, digits, ``_`` and ``-``; a value is any JSON of at most 5000
characters once serialised. Variables are not secrets and are not encrypted: use a
:class:`~headwater.blocks.secret.Secret` for those. Each change is an event
(``headwater.variable.created/updated/deleted``) carrying the name and tags, not the value.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiosqlite
import msgspec

from headwater.blocks import store as block_store
from headwater.engine.dispatch import in_async_context
from headwater.events.emit import emit_event
from headwater.exceptions import VariableError
from headwater.ids import new_uuid
from headwater.storage.database import Database

__all__ = ["Variable", "read_variables"]

T = TypeVar("T")

MAX_NAME_LENGTH = 255
MAX_VALUE_LENGTH = 5000
_NAME = re.compile(r"[a-z0-9_-]+")


class Variable(msgspec.Struct, kw_only=True):
    """A saved variable: its name, JSON value and tags.

    Attributes:
        name: the variable's name.
        value: its value (any JSON).
        tags: labels for finding it.
    """

    name: str
    value: Any
    tags: list[str] = msgspec.field(default_factory=list)

    @classmethod
    def get(cls, name: str, default: Any = None) -> Any:
        """The value of variable ``name``, or ``default`` when there is none.

        In async code (an async flow or task) it returns an awaitable, as Prefect's does.
        """
        if in_async_context():
            return cls.aget(name, default)
        return block_store.run_sync(_get_with(_checked_name(name), default))

    @classmethod
    async def aget(cls, name: str, default: Any = None) -> Any:
        """Async twin of :meth:`get`."""
        return await block_store.run_async(_get_with(_checked_name(name), default))

    @classmethod
    def set(
        cls, name: str, value: Any, tags: list[str] | None = None, overwrite: bool = False
    ) -> Variable:
        """Create variable ``name`` (or, with ``overwrite``, replace it) and return it.

        In async code it returns an awaitable, as Prefect's does.

        Raises:
            VariableError: (a ValueError) a bad name, a value that is not JSON or is longer
                than 5000 characters serialised, or an existing name without overwrite.
        """
        if in_async_context():
            return cls.aset(name, value, tags, overwrite)  # type: ignore[return-value]
        return block_store.run_sync(_set_with(_build(name, value, tags), overwrite))

    @classmethod
    async def aset(
        cls, name: str, value: Any, tags: list[str] | None = None, overwrite: bool = False
    ) -> Variable:
        """Async twin of :meth:`set`."""
        return await block_store.run_async(_set_with(_build(name, value, tags), overwrite))

    @classmethod
    def unset(cls, name: str) -> bool:
        """Delete variable ``name``; True if it existed (an awaitable in async code)."""
        if in_async_context():
            return cls.aunset(name)  # type: ignore[return-value]
        return block_store.run_sync(_unset_with(_checked_name(name)))

    @classmethod
    async def aunset(cls, name: str) -> bool:
        """Async twin of :meth:`unset`."""
        return await block_store.run_async(_unset_with(_checked_name(name)))


def read_variables() -> list[Variable]:
    """Every saved variable, by name."""

    async def work(database: Database) -> list[Variable]:
        async with (
            database.read() as connection,
            connection.execute("SELECT name, value, tags FROM variables ORDER BY name") as cursor,
        ):
            rows = await cursor.fetchall()
        return [
            Variable(name=name, value=msgspec.json.decode(value), tags=msgspec.json.decode(tags))
            for name, value, tags in rows
        ]

    return block_store.run_sync(work)


def _checked_name(name: Any) -> str:
    if not isinstance(name, str):
        raise VariableError(f"a variable name must be a string, not {type(name).__name__}")
    if not name or len(name) > MAX_NAME_LENGTH or not _NAME.fullmatch(name):
        shown = name if len(name) <= 80 else f"{name[:77]}..."
        raise VariableError(
            f"{shown!r} is not a valid variable name: use 1 to {MAX_NAME_LENGTH} lowercase "
            "letters, digits, underscores and dashes"
        )
    return name


def _build(name: str, value: Any, tags: list[str] | None) -> tuple[Variable, str]:
    name = _checked_name(name)
    try:
        encoded = msgspec.json.encode(value).decode()
    except (TypeError, msgspec.EncodeError):
        raise VariableError(
            f"the value of variable {name!r} is not JSON-serialisable "
            f"({type(value).__name__}); use strings, numbers, booleans, None, lists and dicts"
        ) from None
    if len(encoded) > MAX_VALUE_LENGTH:
        raise VariableError(
            f"the value of variable {name!r} is {len(encoded)} characters once serialised "
            f"to JSON; the limit is {MAX_VALUE_LENGTH}"
        )
    if tags is not None and not (
        isinstance(tags, (list, tuple)) and all(isinstance(tag, str) for tag in tags)
    ):
        raise VariableError(f"the tags of variable {name!r} must be a list of strings")
    variable = Variable(name=name, value=msgspec.json.decode(encoded), tags=list(tags or ()))
    return variable, encoded


def _get_with(name: str, default: Any) -> Callable[[Database], Awaitable[Any]]:
    async def work(database: Database) -> Any:
        async with (
            database.read() as connection,
            connection.execute("SELECT value FROM variables WHERE name = ?", (name,)) as cursor,
        ):
            row = await cursor.fetchone()
        return default if row is None else msgspec.json.decode(row[0])

    return work


def _set_with(
    built: tuple[Variable, str], overwrite: bool
) -> Callable[[Database], Awaitable[Variable]]:
    variable, encoded = built
    tags = msgspec.json.encode(variable.tags).decode()

    async def transaction(connection: aiosqlite.Connection) -> tuple[uuid.UUID, bool]:
        async with connection.execute(
            "SELECT id FROM variables WHERE name = ?", (variable.name,)
        ) as cursor:
            row = await cursor.fetchone()
        stamp = block_store.now_text()
        if row is None:
            variable_id = new_uuid()
            await connection.execute(
                "INSERT INTO variables (id, name, value, tags, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (str(variable_id), variable.name, encoded, tags, stamp, stamp),
            )
            return variable_id, True
        if not overwrite:
            raise VariableError(
                f"variable {variable.name!r} already exists; pass overwrite=True to replace it"
            )
        await connection.execute(
            "UPDATE variables SET value = ?, tags = ?, updated = ? WHERE id = ?",
            (encoded, tags, stamp, row[0]),
        )
        return uuid.UUID(row[0]), False

    async def work(database: Database) -> Variable:
        variable_id, created = await database.write(transaction)
        _emit("created" if created else "updated", variable_id, variable.name, variable.tags)
        return variable

    return work


def _unset_with(name: str) -> Callable[[Database], Awaitable[bool]]:
    async def transaction(connection: aiosqlite.Connection) -> tuple[str, list[str]] | None:
        async with connection.execute(
            "SELECT id, tags FROM variables WHERE name = ?", (name,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        await connection.execute("DELETE FROM variables WHERE id = ?", (row[0],))
        return row[0], msgspec.json.decode(row[1])

    async def work(database: Database) -> bool:
        deleted = await database.write(transaction)
        if deleted is None:
            return False
        _emit("deleted", uuid.UUID(deleted[0]), name, deleted[1])
        return True

    return work


def _emit(action: str, variable_id: uuid.UUID, name: str, tags: list[str]) -> None:
    emit_event(
        f"headwater.variable.{action}",
        resource={
            "headwater.resource.id": f"headwater.variable.{variable_id}",
            "headwater.resource.name": name,
        },
        payload={"name": name, "tags": tags},
    )
