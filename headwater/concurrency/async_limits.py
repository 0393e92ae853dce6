"""Concurrency and rate limits for async code (``prefect.concurrency.asyncio``).

The same names and arguments as ``prefect.concurrency.asyncio``, and the same behaviour as
:mod:`headwater.concurrency.sync_limits`; waiting never blocks the event loop (database work runs in
a worker thread, and a slot freed in this process wakes the waiter at once).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from headwater.concurrency import acquire

__all__ = ["concurrency", "rate_limit"]


@asynccontextmanager
async def concurrency(
    names: str | Sequence[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    max_retries: int | None = None,
    lease_duration: float = 300,
    strict: bool = False,
    holder: acquire.ConcurrencyLeaseHolder | Mapping[str, Any] | None = None,
) -> AsyncIterator[None]:
    """Hold ``occupy`` slots on every named limit for the duration of the block.

    See :func:`headwater.concurrency.sync_limits.concurrency` for the arguments and errors.
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
    holding = await acquire.acquire_async(request)
    try:
        yield
    finally:
        await holding.release_async()


async def rate_limit(
    names: str | Sequence[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    strict: bool = False,
) -> None:
    """Take ``occupy`` slots that drain at the limit's decay rate; see the sync form."""
    request = acquire.SlotRequest(
        names, occupy, timeout_seconds=timeout_seconds, strict=strict, rate=True
    )
    await acquire.acquire_async(request)
