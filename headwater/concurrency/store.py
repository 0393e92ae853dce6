"""Concurrency limits in the database: their records, reads and changes.

Every function takes an open ``sqlite3`` connection already inside the right transaction
(see :class:`~headwater.storage.sync_connection.SyncConnection`) and the current time as a
Unix timestamp, so the decisions are plain functions of the stored rows and a clock; taking
and giving back slots is in :mod:`headwater.concurrency.slots`.

A limit's use is never a stored counter, so it cannot leak or drift: it is the sum of the
slots of the *unexpired* leases on it (rows of ``concurrency_slots``) plus what is left of
the slots taken by ``rate_limit``, which drain at ``slot_decay_per_second``.
"""

from __future__ import annotations

import datetime
import sqlite3
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec

from headwater.exceptions import ConcurrencyLimitExistsError, ConcurrencyLimitNotFound

__all__ = [
    "ConcurrencyLease",
    "ConcurrencyLimit",
    "create_limit",
    "decayed",
    "delete_limit",
    "limited_tags",
    "read_leases",
    "read_limit",
    "read_limits",
    "reset_limit",
    "select_limits",
    "timestamp_text",
    "update_limit",
]

_UTC = datetime.timezone.utc
_COLUMNS = (
    "c.id, c.name, c.slot_limit, c.active, c.slot_decay_per_second, c.decaying_slots,"
    " c.decayed_at, c.created, c.updated, COALESCE((SELECT SUM(s.slots) FROM concurrency_slots s"
    " JOIN concurrency_leases l ON l.id = s.lease_id WHERE s.limit_id = c.id AND l.expires > ?), 0)"
)


class ConcurrencyLimit(msgspec.Struct, frozen=True, kw_only=True):
    """A concurrency limit and its current use.

    Attributes:
        id: the limit's id.
        name: its unique name; a tag limit is named ``tag:<tag>``.
        limit: the most slots that may be taken at once.
        active: False means it never blocks (and takes no slots).
        slot_decay_per_second: how fast slots taken by ``rate_limit`` drain (0: never).
        active_slots: slots held now by ``concurrency()`` blocks (live leases).
        decaying_slots: slots taken by ``rate_limit`` that have not drained yet.
        created: when it was created (UTC).
        updated: when it was last changed (UTC).
    """

    id: uuid.UUID
    name: str
    limit: int
    active: bool
    slot_decay_per_second: float
    active_slots: int
    decaying_slots: float
    created: datetime.datetime
    updated: datetime.datetime

    @property
    def available_slots(self) -> float:
        return max(0.0, self.limit - self.active_slots - self.decaying_slots)

    @property
    def tag(self) -> str | None:
        """The tag this limit applies to, for a ``tag:<tag>`` limit."""
        return self.name[4:] if self.name.startswith("tag:") else None


class ConcurrencyLease(msgspec.Struct, frozen=True, kw_only=True):
    """Slots one ``concurrency()`` block holds on one limit.

    Attributes:
        id: the lease id.
        slots: slots it holds on this limit.
        holder: who holds it (``{"type": "task_run", "id": ...}``), when known.
        pid: the holding process.
        hostname: the machine of that process.
        expires: when the slots are released unless the holder renews the lease (UTC).
        created: when the slots were taken (UTC).
    """

    id: uuid.UUID
    slots: int
    holder: dict[str, Any] | None
    pid: int
    hostname: str
    expires: datetime.datetime
    created: datetime.datetime


def timestamp_text(moment: float) -> str:
    """A Unix time as the schema's fixed-width UTC ISO-8601 text."""
    return datetime.datetime.fromtimestamp(moment, _UTC).isoformat(timespec="microseconds")


def _epoch(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


def decayed(row: Sequence[Any], now: float) -> float:
    rate, slots, since = row[4], row[5], row[6]
    if not slots:
        return 0.0
    if rate <= 0 or since is None:
        return float(slots)
    return max(0.0, slots - rate * max(0.0, now - _epoch(since)))


def _limit(row: Sequence[Any], now: float) -> ConcurrencyLimit:
    return ConcurrencyLimit(
        id=uuid.UUID(row[0]),
        name=row[1],
        limit=row[2],
        active=bool(row[3]),
        slot_decay_per_second=row[4],
        active_slots=int(row[9]),
        decaying_slots=decayed(row, now),
        created=datetime.datetime.fromisoformat(row[7]),
        updated=datetime.datetime.fromisoformat(row[8]),
    )


def select_limits(connection: sqlite3.Connection, names: Sequence[str], now: float) -> list[Any]:
    marks = ",".join("?" * len(names))
    return connection.execute(
        f"SELECT {_COLUMNS} FROM concurrency_limits c WHERE c.name IN ({marks})",
        (timestamp_text(now), *names),
    ).fetchall()


def read_limit(connection: sqlite3.Connection, name: str, now: float) -> ConcurrencyLimit | None:
    rows = select_limits(connection, [name], now)
    return _limit(rows[0], now) if rows else None


def read_limits(connection: sqlite3.Connection, now: float) -> list[ConcurrencyLimit]:
    rows = connection.execute(
        f"SELECT {_COLUMNS} FROM concurrency_limits c ORDER BY c.name", (timestamp_text(now),)
    ).fetchall()
    return [_limit(row, now) for row in rows]


def read_leases(connection: sqlite3.Connection, name: str, now: float) -> list[ConcurrencyLease]:
    """The live leases holding slots on limit ``name``, oldest first."""
    rows = connection.execute(
        "SELECT l.id, s.slots, l.holder, l.pid, l.hostname, l.expires, l.created"
        " FROM concurrency_limits c JOIN concurrency_slots s ON s.limit_id = c.id"
        " JOIN concurrency_leases l ON l.id = s.lease_id"
        " WHERE c.name = ? AND l.expires > ? ORDER BY l.created",
        (name, timestamp_text(now)),
    ).fetchall()
    return [
        ConcurrencyLease(
            id=uuid.UUID(row[0]),
            slots=row[1],
            holder=msgspec.json.decode(row[2]) if row[2] else None,
            pid=row[3],
            hostname=row[4],
            expires=datetime.datetime.fromisoformat(row[5]),
            created=datetime.datetime.fromisoformat(row[6]),
        )
        for row in rows
    ]


def limited_tags(connection: sqlite3.Connection) -> frozenset[str]:
    """The tags that have an active ``tag:<tag>`` limit."""
    rows = connection.execute(
        "SELECT substr(name, 5) FROM concurrency_limits WHERE name LIKE 'tag:%' AND active = 1"
    ).fetchall()
    return frozenset(row[0] for row in rows)


def create_limit(
    connection: sqlite3.Connection,
    name: str,
    limit: int,
    *,
    active: bool,
    slot_decay_per_second: float,
    now: float,
) -> ConcurrencyLimit:
    """Insert a limit.

    Raises:
        ConcurrencyLimitExistsError: a limit with that name exists.
    """
    stamp = timestamp_text(now)
    try:
        connection.execute(
            "INSERT INTO concurrency_limits (id, name, slot_limit, active,"
            " slot_decay_per_second, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (str(uuid.uuid4()), name, limit, int(active), slot_decay_per_second, stamp, stamp),
        )
    except sqlite3.IntegrityError:
        raise ConcurrencyLimitExistsError(f"a concurrency limit named {name!r} exists") from None
    created = read_limit(connection, name, now)
    assert created is not None
    return created


def update_limit(
    connection: sqlite3.Connection,
    name: str,
    *,
    limit: int | None,
    active: bool | None,
    slot_decay_per_second: float | None,
    now: float,
) -> ConcurrencyLimit:
    """Change some fields of a limit; held slots stay held.

    Raises:
        ConcurrencyLimitNotFound: no limit has that name.
    """
    changes: dict[str, Any] = {"updated": timestamp_text(now)}
    if limit is not None:
        changes["slot_limit"] = limit
    if active is not None:
        changes["active"] = int(active)
    if slot_decay_per_second is not None:
        changes["slot_decay_per_second"] = slot_decay_per_second
    assignments = ", ".join(f"{column} = ?" for column in changes)
    cursor = connection.execute(
        f"UPDATE concurrency_limits SET {assignments} WHERE name = ?", (*changes.values(), name)
    )
    if cursor.rowcount == 0:
        raise ConcurrencyLimitNotFound(f"no concurrency limit named {name!r}")
    updated = read_limit(connection, name, now)
    assert updated is not None
    return updated


def reset_limit(connection: sqlite3.Connection, name: str, now: float) -> ConcurrencyLimit:
    """Free every slot of a limit: held leases lose it, rate-limit slots are forgotten.

    Raises:
        ConcurrencyLimitNotFound: no limit has that name.
    """
    row = connection.execute("SELECT id FROM concurrency_limits WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise ConcurrencyLimitNotFound(f"no concurrency limit named {name!r}")
    connection.execute("DELETE FROM concurrency_slots WHERE limit_id = ?", (row[0],))
    _delete_empty_leases(connection)
    connection.execute(
        "UPDATE concurrency_limits SET decaying_slots = 0, decayed_at = NULL, updated = ?"
        " WHERE id = ?",
        (timestamp_text(now), row[0]),
    )
    found = read_limit(connection, name, now)
    assert found is not None
    return found


def delete_limit(connection: sqlite3.Connection, name: str) -> bool:
    """Delete a limit and its slots; returns whether it existed."""
    row = connection.execute("SELECT id FROM concurrency_limits WHERE name = ?", (name,)).fetchone()
    if row is None:
        return False
    connection.execute("DELETE FROM concurrency_slots WHERE limit_id = ?", (row[0],))
    connection.execute("DELETE FROM concurrency_limits WHERE id = ?", (row[0],))
    _delete_empty_leases(connection)
    return True


def _delete_empty_leases(connection: sqlite3.Connection) -> None:
    connection.execute(
        "DELETE FROM concurrency_leases WHERE id NOT IN (SELECT lease_id FROM concurrency_slots)"
    )
