"""Concurrency and rate limits for sync code (``prefect.concurrency.sync``).

The same names and arguments as ``prefect.concurrency.sync``. Slots live in the local
database, so a limit holds across every process on the machine. Waiting blocks the calling
thread; use :mod:`headwater.concurrency.asyncio` in async code.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from headwater.concurrency import acquire

__all__ = ["concurrency", "rate_limit"]


@contextmanager
def concurrency(
    names: str | Sequence[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    max_retries: int | None = None,
    lease_duration: float = 300,
    strict: bool = False,
    holder: acquire.ConcurrencyLeaseHolder | Mapping[str, Any] | None = None,
) -> Iterator[None]:
    """Hold ``occupy`` slots on every named limit for the duration of the block.

    The slots on all the limits are taken together, in one transaction, or not at all, so
    two blocks asking for the same limits in another order cannot deadlock. While a limit is
    full the call waits: a slot freed in this process wakes it at once; slots freed by
    other processes are noticed by polling (10 ms, backing off to one second).

    Slots are held on a lease of ``lease_duration`` seconds that a background task renews
    while the block runs; if the process dies, its slots come back when the lease expires,
    or as soon as another process needs them and finds the holder's pid dead.

    Args:
        names: one limit name or several.
        occupy: slots to take on each limit.
        timeout_seconds: give up after this long; None waits as long as it takes.
        max_retries: give up after this many attempts found a limit full.
        lease_duration: seconds the slots stay taken if this process stops renewing them.
        strict: raise when a named limit does not exist, instead of not limiting by it.
        holder: who holds the slots, shown by ``headwater concurrency-limit inspect``
            (default: the current task run or flow run).

    Raises:
        ConcurrencySlotTimeoutError: not free within ``timeout_seconds`` (a TimeoutError).
        ConcurrencySlotAcquisitionError: a missing limit under ``strict``, ``occupy`` over a
            limit, or ``max_retries`` used up.
    """
    request = acquire.SlotRequest(
        names,
        occupy,
        timeout_seconds=timeout_seconds,
        max_retries=max_retries,
        lease_duration=lease_duration,
        strict=strict,
        holder=holder,
    )
    holding = acquire.acquire_sync(request)
    try:
        yield
    finally:
        holding.release_sync()


def rate_limit(
    names: str | Sequence[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    strict: bool = False,
) -> None:
    """Take ``occupy`` slots on every named limit; they drain at the limit's decay rate.

    Use it to pace calls: with a limit of 10 and ``slot_decay_per_second=1``, bursts of up to
    10 pass at once and then one call per second. There is nothing to give back.

    Raises:
        ConcurrencySlotAcquisitionError: a named limit has no ``slot_decay_per_second``, or
            see :func:`concurrency`.
        ConcurrencySlotTimeoutError: not free within ``timeout_seconds``.
    """
    request = acquire.SlotRequest(
        names, occupy, timeout_seconds=timeout_seconds, strict=strict, rate=True
    )
    acquire.acquire_sync(request)
