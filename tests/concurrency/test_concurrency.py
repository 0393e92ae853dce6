"""concurrency() and rate_limit() within one process: sync and async, waiting and errors."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

import anyio
import pytest

from headwater.concurrency import (
    ConcurrencyLeaseHolder,
    acquire,
    create_concurrency_limit,
    read_concurrency_limit,
    reset_concurrency_limit,
)
from headwater.concurrency.asyncio import concurrency as aconcurrency
from headwater.concurrency.asyncio import rate_limit as arate_limit
from headwater.concurrency.sync import concurrency, rate_limit
from headwater.exceptions import ConcurrencySlotAcquisitionError, ConcurrencySlotTimeoutError


def used(name: str) -> int:
    return read_concurrency_limit(name).limit.active_slots


@pytest.fixture
def no_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make cross-process polling so slow that only an in-process wake-up can end a wait."""
    monkeypatch.setattr(acquire, "_POLL_FIRST_INTERVAL", 3600.0)
    monkeypatch.setattr(acquire, "POLL_MAX_INTERVAL", 3600.0)


def test_slots_are_taken_and_given_back(home: Path) -> None:
    create_concurrency_limit("db", 3)
    with concurrency("db", occupy=2):
        assert used("db") == 2
    assert used("db") == 0


def test_slots_are_given_back_when_the_block_raises(home: Path) -> None:
    create_concurrency_limit("db", 1)
    with pytest.raises(KeyError), concurrency("db"):
        raise KeyError("boom")
    assert used("db") == 0


def test_every_named_limit_or_none(home: Path) -> None:
    create_concurrency_limit("a", 1)
    create_concurrency_limit("b", 1)
    with concurrency("a"):
        with pytest.raises(TimeoutError), concurrency(["a", "b"], timeout_seconds=0.05):
            pass
        assert used("b") == 0  # nothing was taken on b while a was full
    with concurrency(["b", "a"]):
        assert used("a") == used("b") == 1


def test_a_missing_limit_does_not_limit_unless_strict(home: Path) -> None:
    create_concurrency_limit("db", 1)
    with concurrency(["db", "nope"]):
        assert used("db") == 1
    with (
        pytest.raises(ConcurrencySlotAcquisitionError, match="'nope'") as caught,
        concurrency(["db", "nope"], strict=True),
    ):
        pass
    assert caught.value.names == ["nope"]
    assert used("db") == 0


def test_inactive_limits_never_block(home: Path) -> None:
    create_concurrency_limit("db", 1, active=False)
    with concurrency("db"), concurrency("db", timeout_seconds=0):
        assert used("db") == 0


def test_occupy_over_the_limit_fails_at_once(home: Path) -> None:
    create_concurrency_limit("db", 2)
    with (
        pytest.raises(ConcurrencySlotAcquisitionError, match="3 slot"),
        concurrency("db", occupy=3),
    ):
        pass


@pytest.mark.parametrize("occupy", [0, -1, 1.5, True])
def test_bad_occupy_is_refused(home: Path, occupy: object) -> None:
    with pytest.raises(ValueError, match="occupy"), concurrency("db", occupy=occupy):  # type: ignore[arg-type]
        pass


def test_timeout_names_the_full_limits(home: Path) -> None:
    create_concurrency_limit("db", 1)
    create_concurrency_limit("api", 5)
    with (
        concurrency("db"),
        pytest.raises(TimeoutError, match="'db'") as caught,
        concurrency(["api", "db"], timeout_seconds=0.1),
    ):
        pass
    assert isinstance(caught.value, ConcurrencySlotTimeoutError)
    assert caught.value.names == ["db"]


def test_max_retries_gives_up(home: Path) -> None:
    create_concurrency_limit("db", 1)
    with (
        concurrency("db"),
        pytest.raises(ConcurrencySlotAcquisitionError, match="retries"),
        concurrency("db", max_retries=0),
    ):
        pass


def test_a_thread_waiting_is_woken_when_a_slot_frees(home: Path, no_polling: None) -> None:
    create_concurrency_limit("db", 1)
    got = threading.Event()
    waiting = threading.Event()

    def waiter() -> None:
        waiting.set()
        with concurrency("db", timeout_seconds=30):
            got.set()

    with concurrency("db"):
        thread = threading.Thread(target=waiter)
        thread.start()
        waiting.wait()
        assert not got.wait(0.1)
    # with polling an hour apart, only the in-process wake-up can let the waiter in
    thread.join(30)
    assert got.is_set()


@pytest.mark.anyio
async def test_async_waiters_are_woken_and_the_loop_keeps_running(
    home: Path, no_polling: None
) -> None:
    create_concurrency_limit("db", 1)
    ticks = 0
    order: list[int] = []

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.005)

    async def worker(number: int) -> None:
        async with aconcurrency("db", timeout_seconds=30):
            order.append(number)
            await anyio.sleep(0.02)

    async with anyio.create_task_group() as group:
        group.start_soon(ticker)
        async with anyio.create_task_group() as workers:
            for number in range(3):
                workers.start_soon(worker, number)
        group.cancel_scope.cancel()
    assert sorted(order) == [0, 1, 2]
    assert ticks > 3  # the loop ran while the workers waited
    assert used("db") == 0


@pytest.mark.anyio
async def test_a_slot_freed_by_a_thread_wakes_an_async_waiter(home: Path, no_polling: None) -> None:
    create_concurrency_limit("db", 1)
    holding = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with concurrency("db"):
            holding.set()
            release.wait(30)

    thread = threading.Thread(target=holder)
    thread.start()
    await anyio.to_thread.run_sync(holding.wait)
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, release.set)
    async with aconcurrency("db", timeout_seconds=30):
        assert used("db") == 1
    thread.join()


@pytest.mark.anyio
async def test_a_cancelled_waiter_holds_nothing(home: Path) -> None:
    create_concurrency_limit("db", 1)
    async with aconcurrency("db"):
        with anyio.move_on_after(0.1):
            async with aconcurrency("db"):
                pytest.fail("the limit was full")
    assert used("db") == 0
    assert read_concurrency_limit("db").leases == []


@pytest.mark.anyio
async def test_async_timeout(home: Path) -> None:
    create_concurrency_limit("db", 1)
    async with aconcurrency("db"):
        with pytest.raises(TimeoutError, match="'db'"):
            async with aconcurrency("db", timeout_seconds=0.05):
                pass


def test_acquired_and_released_events(home: Path, events: list) -> None:
    from headwater.events import get_bus

    create_concurrency_limit("a", 2)
    create_concurrency_limit("b", 2)
    with concurrency(["a", "b"]):
        pass
    get_bus().flush(timeout=10)
    mine = [event for event in events if event.event.startswith("headwater.concurrency-limit.")]
    assert [(event.event, event.resource_id) for event in mine] == [
        ("headwater.concurrency-limit.acquired", "headwater.concurrency-limit.a"),
        ("headwater.concurrency-limit.acquired", "headwater.concurrency-limit.b"),
        ("headwater.concurrency-limit.released", "headwater.concurrency-limit.a"),
        ("headwater.concurrency-limit.released", "headwater.concurrency-limit.b"),
    ]
    first = mine[0]
    assert first.resource["headwater.resource.name"] == "a"
    assert first.resource["slots-acquired"] == "1"
    assert [related.id for related in first.related] == ["headwater.concurrency-limit.b"]
    assert first.payload["lease_id"] == mine[2].payload["lease_id"]


def test_the_holder_is_recorded(home: Path) -> None:
    import uuid

    create_concurrency_limit("db", 1)
    holder = ConcurrencyLeaseHolder("flow_run", uuid.uuid4())
    with concurrency("db", holder=holder):
        lease = read_concurrency_limit("db").leases[0]
    assert lease.holder == {"type": "flow_run", "id": str(holder.id)}


def test_the_lease_is_renewed_while_held(home: Path) -> None:
    create_concurrency_limit("db", 1)
    with concurrency("db", lease_duration=0.3):
        first = read_concurrency_limit("db").leases[0].expires
        time.sleep(0.6)  # two lease lengths: only renewals keep the slot
        detail = read_concurrency_limit("db")
        assert detail.limit.active_slots == 1
        assert detail.leases[0].expires > first
        with pytest.raises(TimeoutError), concurrency("db", timeout_seconds=0.05):
            pass


def test_a_lost_lease_is_reported(home: Path, caplog: pytest.LogCaptureFixture) -> None:
    create_concurrency_limit("db", 1)
    caplog.set_level(logging.WARNING, logger="headwater.concurrency")
    with (
        pytest.raises(ConcurrencySlotAcquisitionError, match="lost"),
        concurrency("db", lease_duration=0.15, strict=True),
    ):
        reset_concurrency_limit("db")
        time.sleep(0.4)  # the next renewal finds the lease gone
    assert "expired or was reset" in caplog.text


def test_rate_limit_slots_drain(home: Path) -> None:
    create_concurrency_limit("api", 2, slot_decay_per_second=20)
    for _ in range(5):
        rate_limit("api", timeout_seconds=10)
        assert read_concurrency_limit("api").limit.decaying_slots <= 2 + 1e-6
    assert used("api") == 0  # rate-limit slots are not leases


def test_rate_limit_times_out_while_slots_drain(home: Path) -> None:
    create_concurrency_limit("api", 1, slot_decay_per_second=0.01)
    rate_limit("api")
    with pytest.raises(TimeoutError, match="'api'"):
        rate_limit("api", timeout_seconds=0.05)


def test_rate_limit_needs_slot_decay(home: Path) -> None:
    create_concurrency_limit("db", 5)
    with pytest.raises(ConcurrencySlotAcquisitionError, match="slot_decay_per_second"):
        rate_limit("db")


@pytest.mark.anyio
async def test_async_rate_limit(home: Path) -> None:
    create_concurrency_limit("api", 1, slot_decay_per_second=50)
    for _ in range(3):
        await arate_limit("api", timeout_seconds=10)
    with pytest.raises(ConcurrencySlotAcquisitionError):
        await arate_limit("nope", strict=True)
