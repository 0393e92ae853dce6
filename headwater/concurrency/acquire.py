"""Taking and giving back slots: one attempt is one database transaction; waiting differs.

:class:`SlotRequest` makes the attempt (a blocking call: sync callers make it in their own
thread, async callers in a worker thread). :func:`acquire_sync` and :func:`acquire_async`
drive the attempts: after a failed one they wait until a slot is released in this process
(:class:`~headwater.concurrency.leases.SlotSignals`), decaying slots make room, or the next
poll for releases by other processes, whichever comes first. Polls back off from 10 ms to
:data:`POLL_MAX_INTERVAL`.
"""

from __future__ import annotations

import math
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio
import msgspec

from headwater.concurrency.leases import get_keeper, get_signals, logger
from headwater.concurrency.slots import Acquired, Blocked, LeaseRequest, release, try_acquire
from headwater.exceptions import ConcurrencySlotAcquisitionError, ConcurrencySlotTimeoutError

__all__ = [
    "POLL_MAX_INTERVAL",
    "ConcurrencyLeaseHolder",
    "Holding",
    "SlotRequest",
    "acquire_async",
    "acquire_sync",
    "is_stale",
]

POLL_MAX_INTERVAL = 1.0
"""Longest wait between two checks for slots freed by other processes, in seconds."""

_POLL_FIRST_INTERVAL = 0.01
_HOSTNAME = socket.gethostname()


class ConcurrencyLeaseHolder(msgspec.Struct, frozen=True):
    """Who holds a lease, shown by ``headwater concurrency-limit inspect``.

    Attributes:
        type: ``"flow_run"``, ``"task_run"`` or ``"deployment"``, as in Prefect.
        id: the holder's id.
    """

    type: str
    id: uuid.UUID


def is_stale(pid: int, hostname: str) -> bool:
    """Whether a lease's process is known to be dead: only processes on this host can be
    probed, and never this process itself."""
    if hostname != _HOSTNAME or pid == os.getpid():
        return False
    from headwater.storage.crashes import process_alive

    return not process_alive(pid)


def _holder_dict(
    holder: ConcurrencyLeaseHolder | Mapping[str, Any] | None,
) -> dict[str, Any] | None:
    if holder is None:
        from headwater.engine.context import current_flow_run, current_task_run

        task_ctx = current_task_run()
        if task_ctx is not None:
            return {"type": "task_run", "id": str(task_ctx.task_run.id)}
        flow_ctx = current_flow_run()
        if flow_ctx is not None:
            return {"type": "flow_run", "id": str(flow_ctx.flow_run.id)}
        return None
    if isinstance(holder, ConcurrencyLeaseHolder):
        return {"type": holder.type, "id": str(holder.id)}
    return {"type": str(holder["type"]), "id": str(holder["id"])}


def _names(names: str | Sequence[str]) -> list[str]:
    listed = [names] if isinstance(names, str) else list(names)
    for name in listed:
        if not isinstance(name, str) or not name:
            raise ValueError(f"concurrency limit names must be non-empty strings, got {name!r}")
    return sorted(set(listed))


class Holding:
    """Slots taken by one ``concurrency()`` block (or none, when nothing was limited)."""

    __slots__ = ("lease_id", "limits", "lost", "occupy", "strict")

    def __init__(
        self, lease_id: str | None, limits: list[tuple[str, int]], occupy: int, strict: bool
    ) -> None:
        self.lease_id = lease_id
        self.limits = limits
        self.occupy = occupy
        self.strict = strict
        self.lost = False

    def _lost(self) -> None:
        self.lost = True
        logger.warning(
            "the lease on concurrency limit(s) %s expired or was reset while held: "
            "another holder may run alongside this one",
            ", ".join(repr(name) for name, _ in self.limits),
        )

    def release_blocking(self) -> None:
        """Give the slots back (a blocking call); idempotent."""
        lease_id = self.lease_id
        if lease_id is None:
            return
        self.lease_id = None
        from headwater.storage.sync_connection import get_sync_connection

        get_keeper().drop(lease_id)
        try:
            with get_sync_connection().write() as connection:
                release(connection, lease_id)
        finally:
            get_signals().notify()
        _emit(self.limits, "released", self.occupy, lease_id)
        if self.lost and self.strict:
            raise ConcurrencySlotAcquisitionError(
                "the lease on concurrency limit(s) "
                f"{', '.join(repr(name) for name, _ in self.limits)} was lost while held "
                "(strict=True)",
                [name for name, _ in self.limits],
            )

    def release_sync(self) -> None:
        self.release_blocking()

    async def release_async(self) -> None:
        if self.lease_id is None:
            return
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.release_blocking)


class SlotRequest:
    """One request for slots; :meth:`attempt` tries once."""

    __slots__ = (
        "duration",
        "holder",
        "max_retries",
        "names",
        "occupy",
        "rate",
        "strict",
        "timeout",
    )

    def __init__(
        self,
        names: str | Sequence[str],
        occupy: int = 1,
        *,
        timeout_seconds: float | None = None,
        max_retries: int | None = None,
        lease_duration: float = 300.0,
        strict: bool = False,
        holder: ConcurrencyLeaseHolder | Mapping[str, Any] | None = None,
        rate: bool = False,
    ) -> None:
        if isinstance(occupy, bool) or not isinstance(occupy, int) or occupy < 1:
            raise ValueError(f"occupy must be a positive integer, got {occupy!r}")
        if timeout_seconds is not None and not timeout_seconds >= 0:
            raise ValueError(f"timeout_seconds must be >= 0, got {timeout_seconds!r}")
        if not lease_duration > 0:
            raise ValueError(f"lease_duration must be > 0 seconds, got {lease_duration!r}")
        self.names = _names(names)
        self.occupy = occupy
        self.timeout = timeout_seconds
        self.max_retries = max_retries
        self.duration = float(lease_duration)
        self.strict = strict
        self.holder = None if rate else _holder_dict(holder)
        self.rate = rate

    def attempt(self) -> Holding | Blocked:
        """Try once to take the slots (a blocking database transaction)."""
        from headwater.storage.sync_connection import get_sync_connection

        if not self.names:
            return Holding(None, [], self.occupy, self.strict)
        lease = None
        if not self.rate:
            lease = LeaseRequest(
                str(uuid.uuid4()), self.holder, os.getpid(), _HOSTNAME, self.duration
            )
        with get_sync_connection().write() as connection:
            outcome = try_acquire(
                connection,
                self.names,
                self.occupy,
                lease=lease,
                strict=self.strict,
                now=time.time(),
                is_stale=is_stale,
            )
        if outcome.released_stale:
            logger.info(
                "released %d expired or orphaned concurrency lease(s) on %s",
                outcome.released_stale,
                ", ".join(map(repr, self.names)),
            )
        if not isinstance(outcome, Acquired):
            return outcome
        holding = Holding(None, outcome.limits, self.occupy, self.strict)
        if lease is not None and outcome.limits:
            holding.lease_id = lease.lease_id
            get_keeper().keep(lease.lease_id, self.duration, holding._lost)
        _emit(outcome.limits, "acquired", self.occupy, holding.lease_id)
        return holding


class _Pacer:
    """When to try again: deadline, retry budget and polling backoff of one request."""

    __slots__ = ("deadline", "delay", "request", "tries")

    def __init__(self, request: SlotRequest) -> None:
        self.request = request
        timeout = request.timeout
        self.deadline = math.inf if timeout is None else time.monotonic() + timeout
        self.delay = _POLL_FIRST_INTERVAL
        self.tries = 0

    def next_wait(self, blocked: Blocked) -> float:
        """Seconds to wait before the next attempt; raises when no attempt is left."""
        request = self.request
        self.tries += 1
        if request.max_retries is not None and self.tries > request.max_retries:
            raise ConcurrencySlotAcquisitionError(
                f"concurrency limit(s) {', '.join(map(repr, blocked.names))} still full after "
                f"{request.max_retries} retries",
                blocked.names,
            )
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise ConcurrencySlotTimeoutError(blocked.names, request.timeout or 0.0)
        wait = self.delay * random.uniform(0.8, 1.2)  # jitter: processes do not poll in step
        self.delay = min(self.delay * 2, POLL_MAX_INTERVAL)
        if blocked.retry_after is not None:
            wait = min(wait, blocked.retry_after)
        return max(0.0, min(wait, remaining))


def acquire_sync(
    request: SlotRequest, on_blocked: Callable[[Blocked], None] | None = None
) -> Holding:
    """Take the slots, blocking this thread while they are not free.

    Raises:
        ConcurrencySlotTimeoutError: not free within ``timeout_seconds`` (a TimeoutError).
        ConcurrencySlotAcquisitionError: they can never be taken, or ``max_retries`` ran out.
    """
    signals = get_signals()
    pacer = _Pacer(request)
    while True:
        generation = signals.generation
        outcome = request.attempt()
        if isinstance(outcome, Holding):
            return outcome
        if on_blocked is not None and pacer.tries == 0:
            on_blocked(outcome)
        signals.wait_sync(generation, pacer.next_wait(outcome))


async def acquire_async(
    request: SlotRequest, on_blocked: Callable[[Blocked], None] | None = None
) -> Holding:
    """Take the slots, waiting without blocking the event loop; see :func:`acquire_sync`."""
    signals = get_signals()
    pacer = _Pacer(request)
    while True:
        generation = signals.generation
        outcome = await _attempt_async(request)
        if isinstance(outcome, Holding):
            return outcome
        if on_blocked is not None and pacer.tries == 0:
            on_blocked(outcome)
        await signals.wait_async(generation, pacer.next_wait(outcome))


async def _attempt_async(request: SlotRequest) -> Holding | Blocked:
    holding: list[Holding | Blocked] = []

    def attempt() -> None:
        holding.append(request.attempt())

    try:
        await anyio.to_thread.run_sync(attempt)
    except BaseException:
        # Cancelled while the worker thread took the slots: give them back, or they leak.
        if holding and isinstance(holding[0], Holding):
            with anyio.CancelScope(shield=True):
                await holding[0].release_async()
        raise
    return holding[0]


def _emit(limits: list[tuple[str, int]], action: str, occupy: int, lease_id: str | None) -> None:
    if not limits:
        return
    from headwater.events.emit import emit_event

    resource_ids = [f"headwater.concurrency-limit.{name}" for name, _ in limits]
    for (name, limit), resource_id in zip(limits, resource_ids, strict=True):
        emit_event(
            f"headwater.concurrency-limit.{action}",
            resource={
                "headwater.resource.id": resource_id,
                "headwater.resource.name": name,
                f"slots-{action}": str(occupy),
                "limit": str(limit),
            },
            related=[
                {"headwater.resource.id": other, "headwater.resource.role": "concurrency-limit"}
                for other in resource_ids
                if other != resource_id
            ],
            payload={"lease_id": lease_id, "slots": occupy},
        )
