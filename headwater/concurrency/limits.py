"""Managing concurrency limits: create, read, update, reset, delete.

Limits live in the local database (``HEADWATER_HOME``), so every process on the machine
shares them. Limits are never created implicitly: ``concurrency()`` on a missing name does
not limit anything (or raises, with ``strict=True``). A tag limit is an ordinary limit named
``tag:<tag>``; :func:`tag_limit_name` builds that name.

Each function has an async twin (``a``-prefixed) that does the same work in a worker thread.
A change made here wakes this process's waiters at once (a raised limit or a reset may free
room) and refreshes its cache of limited tags.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

import anyio
import msgspec

from headwater.concurrency import store
from headwater.concurrency.leases import get_signals
from headwater.concurrency.slots import release_stale
from headwater.concurrency.store import ConcurrencyLease, ConcurrencyLimit
from headwater.concurrency.task_slots import invalidate_tag_cache
from headwater.exceptions import ConcurrencyLimitNotFound

__all__ = [
    "ConcurrencyLimitDetail",
    "acreate_concurrency_limit",
    "adelete_concurrency_limit",
    "aread_concurrency_limit",
    "areset_concurrency_limit",
    "create_concurrency_limit",
    "delete_concurrency_limit",
    "read_concurrency_limit",
    "read_concurrency_limits",
    "reset_concurrency_limit",
    "tag_limit_name",
    "update_concurrency_limit",
]

T = TypeVar("T")


class ConcurrencyLimitDetail(msgspec.Struct, frozen=True, kw_only=True):
    """A limit with the leases holding its slots (``headwater concurrency-limit inspect``)."""

    limit: ConcurrencyLimit
    leases: list[ConcurrencyLease]


def tag_limit_name(tag: str) -> str:
    """The name of the limit on task runs tagged ``tag``: ``tag:<tag>``, as in Prefect."""
    return f"tag:{tag}"


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a concurrency limit name must be a non-empty string, got {name!r}")
    return name


def _check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"a concurrency limit must be an integer >= 0, got {limit!r}")
    return limit


def _check_decay(decay: float) -> float:
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not decay >= 0:
        raise ValueError(f"slot_decay_per_second must be a number >= 0, got {decay!r}")
    return float(decay)


def _write(work: Callable[..., T], *args: object, **kwargs: object) -> T:
    from headwater.storage.sync_connection import get_sync_connection

    try:
        with get_sync_connection().write() as connection:
            return work(connection, *args, **kwargs)
    finally:
        invalidate_tag_cache()
        get_signals().notify()


def _read(work: Callable[..., T], *args: object) -> T:
    """Run ``work`` after releasing the slots of expired leases and dead processes, so a
    listing never shows slots that nobody holds any more."""
    from headwater.concurrency.acquire import is_stale
    from headwater.storage.sync_connection import get_sync_connection

    with get_sync_connection().write() as connection:
        released = release_stale(connection, time.time(), is_stale)
        result = work(connection, *args)
    if released:
        get_signals().notify()
    return result


def create_concurrency_limit(
    name: str, limit: int, *, active: bool = True, slot_decay_per_second: float = 0.0
) -> ConcurrencyLimit:
    """Create a limit of ``limit`` slots named ``name`` (``tag:<tag>`` for a tag limit).

    Args:
        name: the unique name ``concurrency()`` and ``rate_limit()`` refer to.
        limit: the most slots taken at once; 0 makes every request fail at once.
        active: an inactive limit never blocks.
        slot_decay_per_second: how fast slots taken by ``rate_limit`` drain; required (> 0)
            for rate limits.

    Raises:
        ConcurrencyLimitExistsError: the name is taken.
        ValueError: a bad name, limit or decay.
    """
    return _write(
        store.create_limit,
        _check_name(name),
        _check_limit(limit),
        active=bool(active),
        slot_decay_per_second=_check_decay(slot_decay_per_second),
        now=time.time(),
    )


def update_concurrency_limit(
    name: str,
    *,
    limit: int | None = None,
    active: bool | None = None,
    slot_decay_per_second: float | None = None,
) -> ConcurrencyLimit:
    """Change a limit; slots already held stay held.

    Raises:
        ConcurrencyLimitNotFound: no limit has that name.
    """
    return _write(
        store.update_limit,
        name,
        limit=None if limit is None else _check_limit(limit),
        active=active,
        slot_decay_per_second=None
        if slot_decay_per_second is None
        else _check_decay(slot_decay_per_second),
        now=time.time(),
    )


def read_concurrency_limit(name: str) -> ConcurrencyLimitDetail:
    """A limit, its current use and the leases holding it.

    Raises:
        ConcurrencyLimitNotFound: no limit has that name.
    """

    def work(connection: sqlite3.Connection, name: str) -> ConcurrencyLimitDetail:
        now = time.time()
        found = store.read_limit(connection, name, now)
        if found is None:
            raise ConcurrencyLimitNotFound(f"no concurrency limit named {name!r}")
        return ConcurrencyLimitDetail(limit=found, leases=store.read_leases(connection, name, now))

    return _read(work, name)


def read_concurrency_limits() -> list[ConcurrencyLimit]:
    """Every limit, by name."""
    return _read(store.read_limits, time.time())


def reset_concurrency_limit(name: str) -> ConcurrencyLimit:
    """Free every slot of a limit (for slots wedged by a holder you know is gone).

    A live holder whose slots were reset keeps running; a warning is logged in its process
    when it next renews its lease.

    Raises:
        ConcurrencyLimitNotFound: no limit has that name.
    """
    return _write(store.reset_limit, name, time.time())


def delete_concurrency_limit(name: str) -> None:
    """Delete a limit; what it limited runs unlimited from now on.

    Raises:
        ConcurrencyLimitNotFound: no limit has that name.
    """
    if not _write(store.delete_limit, name):
        raise ConcurrencyLimitNotFound(f"no concurrency limit named {name!r}")


async def acreate_concurrency_limit(
    name: str, limit: int, *, active: bool = True, slot_decay_per_second: float = 0.0
) -> ConcurrencyLimit:
    """:func:`create_concurrency_limit`, off the event loop."""
    return await anyio.to_thread.run_sync(
        lambda: create_concurrency_limit(
            name, limit, active=active, slot_decay_per_second=slot_decay_per_second
        )
    )


async def aread_concurrency_limit(name: str) -> ConcurrencyLimitDetail:
    """:func:`read_concurrency_limit`, off the event loop."""
    return await anyio.to_thread.run_sync(read_concurrency_limit, name)


async def areset_concurrency_limit(name: str) -> ConcurrencyLimit:
    """:func:`reset_concurrency_limit`, off the event loop."""
    return await anyio.to_thread.run_sync(reset_concurrency_limit, name)


async def adelete_concurrency_limit(name: str) -> None:
    """:func:`delete_concurrency_limit`, off the event loop."""
    await anyio.to_thread.run_sync(delete_concurrency_limit, name)
