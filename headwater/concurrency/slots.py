"""Taking and giving back slots in the database: one function per transaction.

Every function takes a ``sqlite3`` connection inside a ``BEGIN IMMEDIATE`` transaction and
the current time as a Unix timestamp. A limit's use is recomputed from live leases and
undrained rate-limit slots on every attempt (see :mod:`headwater.concurrency.store`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from headwater.concurrency.store import decayed, select_limits, timestamp_text
from headwater.exceptions import ConcurrencySlotAcquisitionError

__all__ = [
    "Acquired",
    "Blocked",
    "LeaseRequest",
    "release",
    "release_stale",
    "renew",
    "try_acquire",
]


class LeaseRequest(msgspec.Struct, frozen=True):
    """What a ``concurrency()`` block asks for besides its slots."""

    lease_id: str
    holder: dict[str, Any] | None
    pid: int
    hostname: str
    duration: float


class Acquired(msgspec.Struct, frozen=True):
    """Slots were taken on ``limits`` (``(name, limit)`` pairs; empty: nothing to limit)."""

    limits: list[tuple[str, int]]
    released_stale: int = 0


class Blocked(msgspec.Struct, frozen=True):
    """Some limit is full; ``retry_after`` is when decaying slots will have made room."""

    names: list[str]
    retry_after: float | None
    released_stale: int = 0


def try_acquire(
    connection: sqlite3.Connection,
    names: Sequence[str],
    occupy: int,
    *,
    lease: LeaseRequest | None,
    strict: bool,
    now: float,
    is_stale: Callable[[int, str], bool],
) -> Acquired | Blocked:
    """Take ``occupy`` slots on every active limit in ``names``, or none at all.

    With ``lease`` the slots are held on that lease until released or expired
    (``concurrency``); without, they are rate-limit slots that drain (``rate_limit``).
    When a limit is full, leases on it whose process is dead (``is_stale(pid, hostname)``)
    are deleted and the check is made once more.

    Raises:
        ConcurrencySlotAcquisitionError: a limit is missing and ``strict``; ``occupy`` is
            larger than a limit; ``rate_limit`` on a limit without slot decay.
    """
    rows = select_limits(connection, names, now)
    if strict and len(rows) < len(names):
        missing = sorted(set(names) - {row[1] for row in rows})
        raise ConcurrencySlotAcquisitionError(
            f"concurrency limit(s) {', '.join(map(repr, missing))} do not exist (strict=True)",
            missing,
        )
    rows = [row for row in rows if row[3]]  # inactive limits never block
    for row in rows:
        if lease is None and row[4] <= 0:
            raise ConcurrencySlotAcquisitionError(
                f"rate_limit needs slot_decay_per_second on concurrency limit {row[1]!r}; "
                "set it with `headwater concurrency-limit create NAME LIMIT "
                "--slot-decay-per-second X`",
                [row[1]],
            )
        if occupy > row[2]:
            raise ConcurrencySlotAcquisitionError(
                f"cannot take {occupy} slot(s) on concurrency limit {row[1]!r}, "
                f"whose limit is {row[2]}",
                [row[1]],
            )
    if not rows:
        return Acquired([])
    full = _full(rows, occupy, now)
    released = 0
    if full:
        released = release_stale(connection, now, is_stale, [row[0] for row in full])
        if released:
            rows = [row for row in select_limits(connection, names, now) if row[3]]
            full = _full(rows, occupy, now)
    if full:
        retry_after = None
        if all(row[4] > 0 for row in full):
            retry_after = max(
                (row[9] + decayed(row, now) + occupy - row[2]) / row[4] for row in full
            )
        return Blocked([row[1] for row in full], retry_after, released)
    if lease is None:
        stamp = timestamp_text(now)
        connection.executemany(
            "UPDATE concurrency_limits SET decaying_slots = ?, decayed_at = ? WHERE id = ?",
            [(decayed(row, now) + occupy, stamp, row[0]) for row in rows],
        )
    else:
        holder = msgspec.json.encode(lease.holder).decode() if lease.holder else None
        connection.execute(
            "INSERT INTO concurrency_leases (id, holder, pid, hostname, expires, created)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                lease.lease_id,
                holder,
                lease.pid,
                lease.hostname,
                timestamp_text(now + lease.duration),
                timestamp_text(now),
            ),
        )
        connection.executemany(
            "INSERT INTO concurrency_slots (limit_id, lease_id, slots) VALUES (?, ?, ?)",
            [(row[0], lease.lease_id, occupy) for row in rows],
        )
    return Acquired([(row[1], row[2]) for row in rows], released)


def _full(rows: list[Any], occupy: int, now: float) -> list[Any]:
    # A tiny epsilon: decayed slots are floats, and 0.9999999 must not block a whole slot.
    return [row for row in rows if row[9] + decayed(row, now) + occupy > row[2] + 1e-9]


def release_stale(
    connection: sqlite3.Connection,
    now: float,
    is_stale: Callable[[int, str], bool],
    limit_ids: list[str] | None = None,
) -> int:
    """Delete expired leases and leases of dead processes (on these limits, or on any).

    Returns how many were deleted.
    """
    if limit_ids is None:
        rows = connection.execute(
            "SELECT id, pid, hostname, expires FROM concurrency_leases"
        ).fetchall()
    else:
        marks = ",".join("?" * len(limit_ids))
        rows = connection.execute(
            "SELECT DISTINCT l.id, l.pid, l.hostname, l.expires FROM concurrency_leases l"
            f" JOIN concurrency_slots s ON s.lease_id = l.id WHERE s.limit_id IN ({marks})",
            limit_ids,
        ).fetchall()
    stamp = timestamp_text(now)
    stale = [(row[0],) for row in rows if row[3] <= stamp or is_stale(row[1], row[2])]
    if stale:
        connection.executemany("DELETE FROM concurrency_slots WHERE lease_id = ?", stale)
        connection.executemany("DELETE FROM concurrency_leases WHERE id = ?", stale)
    return len(stale)


def release(connection: sqlite3.Connection, lease_id: str) -> bool:
    """Give back a lease's slots; returns False if it was already gone (expired, reset)."""
    connection.execute("DELETE FROM concurrency_slots WHERE lease_id = ?", (lease_id,))
    return (
        connection.execute("DELETE FROM concurrency_leases WHERE id = ?", (lease_id,)).rowcount > 0
    )


def renew(
    connection: sqlite3.Connection, leases: Sequence[tuple[str, float]], now: float
) -> list[str]:
    """Push back the expiry of ``(lease_id, duration)`` leases; returns the ids already gone."""
    lost = []
    for lease_id, duration in leases:
        cursor = connection.execute(
            "UPDATE concurrency_leases SET expires = ? WHERE id = ?",
            (timestamp_text(now + duration), lease_id),
        )
        if cursor.rowcount == 0:
            lost.append(lease_id)
    return lost
