"""Behaviour of headwater.events.bus: ordering, backpressure, gaps, flushes, watches."""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import threading
import time
import warnings
from typing import Any

import anyio
import pytest

from headwater.events.bus import EventBus, GapNotice, get_bus
from headwater.events.schema import RESOURCE_ID, Event
from headwater.events.service import get_service_loop
from headwater.ids import uuid_from_int

_EPOCH = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)


class Record:
    """A compact record like the engine's: the consumer, not publish, materialises it."""

    materialised = 0

    def __init__(self, resource_id: str, seq: int) -> None:
        self.resource_id = resource_id
        self.seq = seq

    def to_event(self) -> Event:
        Record.materialised += 1
        return Event(
            occurred=_EPOCH,
            event="test.happened",
            resource={RESOURCE_ID: self.resource_id},
            payload={"seq": self.seq},
            id=uuid_from_int(self.seq),
        )


def seqs(items: list[Any]) -> list[Any]:
    """Each delivered item as its seq, or as the GapNotice itself."""
    return [item if isinstance(item, GapNotice) else item.payload["seq"] for item in items]


def wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.001)


def in_thread(fn: Any, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=fn, args=args, daemon=True)
    thread.start()
    return thread


def test_has_subscribers_follows_subscriptions_and_watches(bus: EventBus) -> None:
    assert not bus.has_subscribers
    bus.publish(Record("r", 0))  # nobody listening: nothing happens
    sub = bus.subscribe()
    assert bus.has_subscribers
    sub.close()
    assert not bus.has_subscribers
    with bus.watch("r"):
        assert bus.has_subscribers
    assert not bus.has_subscribers


@pytest.mark.anyio
async def test_each_resource_keeps_publish_order_across_publishing_threads(bus: EventBus) -> None:
    threads, per_thread = 4, 300
    async with bus.subscribe(lossless=True, buffer_size=32) as sub:
        publishers = [
            in_thread(lambda r=f"r{t}": [bus.publish(Record(r, i)) for i in range(per_thread)])
            for t in range(threads)
        ]
        seen: dict[str, list[int]] = {}
        with anyio.fail_after(10):
            while sum(map(len, seen.values())) < threads * per_thread:
                batch = await sub.get_batch(max_items=50, max_latency=0)
                for event in batch:
                    seen.setdefault(event.resource_id, []).append(event.payload["seq"])
                sub.ack()
    for thread in publishers:
        thread.join(5)
    assert seen == {f"r{t}": list(range(per_thread)) for t in range(threads)}


@pytest.mark.anyio
async def test_lossless_publisher_waits_for_room_then_continues(bus: EventBus) -> None:
    sub = bus.subscribe(lossless=True, buffer_size=2)
    done = threading.Event()

    def publish_three() -> None:
        for i in range(3):
            bus.publish(Record("r", i))
        done.set()

    publisher = in_thread(publish_three)
    await anyio.to_thread.run_sync(wait_until, lambda: sub._buffer.blocked == 1)
    assert not done.is_set() and sub.pending == 2
    with anyio.fail_after(5):
        first = await sub.__anext__()  # makes room
        await anyio.to_thread.run_sync(done.wait, 5)
        rest = [await sub.__anext__(), await sub.__anext__()]
    assert seqs([first, *rest]) == [0, 1, 2]
    publisher.join(5)
    sub.close()


@pytest.mark.anyio
async def test_lossy_overflow_yields_exact_gap_notices_in_place(bus: EventBus) -> None:
    async with bus.subscribe(lossless=False, buffer_size=3) as sub:
        for i in range(10):  # 0, 1, 2 fit; 3..9 are dropped
            bus.publish(Record("r", i))
        received = [await sub.__anext__()]  # 0: the buffer is full again with the gap
        bus.publish(Record("r", 10))  # dropped into the same gap
        received += [await sub.__anext__(), await sub.__anext__()]  # leaves the gap alone
        for i in (11, 12, 13):  # 11 and 12 fit behind the gap, 13 opens a new one
            bus.publish(Record("r", i))
        received += [await sub.__anext__() for _ in range(4)]
        assert sub.pending == 0
        assert sub.dropped == 9
    assert seqs(received) == [0, 1, 2, GapNotice(dropped=8), 11, 12, GapNotice(dropped=1)]


def test_lossy_publisher_never_waits_for_a_consumer_that_never_reads(bus: EventBus) -> None:
    sub = bus.subscribe(lossless=False, buffer_size=10)
    publisher = in_thread(lambda: [bus.publish(Record("r", i)) for i in range(5000)])
    publisher.join(10)
    assert not publisher.is_alive()
    assert sub.dropped == 4990 and sub.pending == 11  # ten events and one gap


@pytest.mark.anyio
async def test_publish_does_not_materialise_compact_records(bus: EventBus) -> None:
    async with bus.subscribe(lossless=True) as sub:
        before = Record.materialised
        bus.publish(Record("r", 1))
        assert Record.materialised == before
        event = await sub.__anext__()
    assert isinstance(event, Event) and Record.materialised == before + 1


def test_callback_that_raises_is_logged_by_name_and_keeps_receiving(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[int] = []

    def fragile(event: Event) -> None:
        seen.append(event.payload["seq"])
        if event.payload["seq"] == 1:
            raise ValueError("boom")

    consumer = bus.add_consumer(fragile, name="fragile-consumer")
    with caplog.at_level(logging.ERROR, logger="headwater.events"):
        for i in range(3):
            bus.publish(Record("r", i))
        assert bus.flush(timeout=5)
    assert seen == [0, 1, 2]
    assert not consumer.closed
    [record] = [r for r in caplog.records if "fragile-consumer" in r.getMessage()]
    assert record.name == "headwater.events" and record.exc_info is not None
    consumer.close()


def test_async_callbacks_run_in_order_on_the_service_loop(bus: EventBus) -> None:
    seen: list[tuple[int, str]] = []

    async def handler(event: Event) -> None:
        await anyio.sleep(0)
        seen.append((event.payload["seq"], threading.current_thread().name))

    consumer = bus.add_consumer(handler, name="async-handler")
    for i in range(20):
        bus.publish(Record("r", i))
    assert bus.flush(timeout=5)
    assert seen == [(i, "headwater-services") for i in range(20)]
    consumer.close()


def test_async_iterator_works_on_a_loop_in_another_thread(bus: EventBus) -> None:
    ready = threading.Event()
    received: list[int] = []

    async def consume() -> None:
        async with bus.subscribe(name="other-loop") as sub:
            ready.set()
            async for event in sub:
                received.append(event.payload["seq"])
                if len(received) == 50:
                    break

    consumer = in_thread(asyncio.run, consume())
    assert ready.wait(5)
    for i in range(50):
        bus.publish(Record("r", i))
    consumer.join(5)
    assert received == list(range(50))


@pytest.mark.anyio
async def test_get_batch_stops_at_max_items(bus: EventBus) -> None:
    async with bus.subscribe(lossless=True) as sub:
        for i in range(10):
            bus.publish(Record("r", i))
        with anyio.fail_after(5):
            first = await sub.get_batch(max_items=4, max_latency=30)
            second = await sub.get_batch(max_items=100, max_latency=0)
    assert seqs(first) == [0, 1, 2, 3] and seqs(second) == list(range(4, 10))


@pytest.mark.anyio
async def test_get_batch_gathers_for_max_latency_after_the_first_item(bus: EventBus) -> None:
    async with bus.subscribe(lossless=True) as sub:
        loop = asyncio.get_running_loop()
        loop.call_later(0.01, bus.publish, Record("r", 0))
        loop.call_later(0.02, bus.publish, Record("r", 1))  # within the latency window
        with anyio.fail_after(5):
            batch = await sub.get_batch(max_items=100, max_latency=0.3)
            bus.publish(Record("r", 2))
            late = await sub.get_batch(max_items=100, max_latency=0.01)
    assert seqs(batch) == [0, 1] and seqs(late) == [2]


@pytest.mark.anyio
async def test_batch_items_count_as_processed_only_once_acked(bus: EventBus) -> None:
    async with bus.subscribe(lossless=True) as sub:
        bus.publish(Record("r", 0))
        bus.publish(Record("r", 1))
        batch = await sub.get_batch(max_items=10, max_latency=0)
        flushed = threading.Event()
        flusher = in_thread(lambda: bus.flush(timeout=5) and flushed.set())
        assert not await anyio.to_thread.run_sync(flushed.wait, 0.1)
        sub.ack(1)
        assert not await anyio.to_thread.run_sync(flushed.wait, 0.1)
        sub.ack(len(batch) - 1)
        assert await anyio.to_thread.run_sync(flushed.wait, 5)
        with pytest.raises(ValueError, match="cannot ack 1 items"):
            sub.ack(1)
    flusher.join(5)


@pytest.mark.anyio
async def test_aflush_waits_for_the_iterator_to_ask_for_the_next_item(bus: EventBus) -> None:
    async with bus.subscribe(lossless=True) as sub, anyio.create_task_group() as group:
        bus.publish(Record("r", 0))
        await sub.__anext__()
        results: list[bool] = []

        async def flush() -> None:
            results.append(await bus.aflush(timeout=5))

        group.start_soon(flush)
        await anyio.sleep(0.05)
        assert results == []  # the item is still being processed
        bus.publish(Record("r", 1))
        await sub.__anext__()  # acks item 0, then passes the flush marker
        with anyio.fail_after(5):
            while not results:
                await anyio.sleep(0.001)
    assert results == [True]


def test_flush_waits_for_a_slow_consumer_and_returns_true(bus: EventBus) -> None:
    seen: list[int] = []

    def slow(event: Event) -> None:
        time.sleep(0.002)
        seen.append(event.payload["seq"])

    consumer = bus.add_consumer(slow, buffer_size=8, name="slow")
    for i in range(50):
        bus.publish(Record("r", i))
    assert bus.flush(timeout=10) is True
    assert seen == list(range(50))
    consumer.close()


def test_flush_times_out_on_a_subscriber_that_never_consumes(bus: EventBus) -> None:
    idle = bus.subscribe(lossless=True, name="idle")  # bound to this (living) thread
    bus.publish(Record("r", 0))
    result: list[bool] = []
    flusher = in_thread(lambda: result.append(bus.flush(timeout=0.1)))
    flusher.join(5)
    assert result == [False]
    idle.close()


@pytest.mark.anyio
async def test_flush_reports_items_a_consumer_acked_as_failed(bus: EventBus) -> None:
    sub = bus.subscribe(lossless=True, name="store")
    bus.publish(Record("r", 0))
    bus.publish(Record("r", 1))
    results: list[bool] = []
    flusher = in_thread(lambda: results.append(bus.flush(timeout=5)))
    batch = await sub.get_batch(max_items=10, max_latency=0.01)
    assert len(batch) == 2
    sub.ack(len(batch), failed=True)  # e.g. the database refused the write
    await anyio.to_thread.run_sync(flusher.join, 5)
    assert results == [False]
    # a later flush over items that were processed is clean again
    bus.publish(Record("r", 2))
    later: list[bool] = []
    second = in_thread(lambda: later.append(bus.flush(timeout=5)))
    batch = await sub.get_batch(max_items=10, max_latency=0.01)
    sub.ack(len(batch))
    await anyio.to_thread.run_sync(second.join, 5)
    assert later == [True]
    sub.close()


def test_an_abandoned_subscription_is_closed_and_never_blocks(bus: EventBus) -> None:
    bus.subscribe(lossless=True, buffer_size=1)  # dropped at once: garbage collected
    publisher = in_thread(lambda: [bus.publish(Record("r", i)) for i in range(5)])
    publisher.join(5)
    assert not publisher.is_alive()
    assert bus.flush(timeout=5)


@pytest.mark.anyio
async def test_flush_without_lossless_subscribers_is_immediate(bus: EventBus) -> None:
    bus.subscribe(lossless=False)
    bus.publish(Record("r", 0))
    assert bus.flush(timeout=0) is True
    assert await bus.aflush(timeout=0) is True


@pytest.mark.anyio
async def test_same_thread_publish_into_full_lossless_buffer_does_not_deadlock(
    bus: EventBus,
) -> None:
    async with bus.subscribe(lossless=True, buffer_size=2) as sub:
        for i in range(5):  # this loop's thread consumes ``sub``: soft bound, no wait
            bus.publish(Record("r", i))
        assert sub.pending == 5
        with anyio.fail_after(5):
            received = [await sub.__anext__() for _ in range(5)]
    assert seqs(received) == [0, 1, 2, 3, 4]


def test_service_loop_consumer_publishing_into_its_own_full_buffer(bus: EventBus) -> None:
    seen: list[int] = []

    def echo(event: Event) -> None:
        seen.append(event.payload["seq"])
        if event.payload["seq"] < 10:
            for child in range(3):  # the service thread publishes into its own full buffer
                bus.publish(Record("r", 100 + event.payload["seq"] * 3 + child))

    consumer = bus.add_consumer(echo, buffer_size=1, name="echo")
    bus.publish(Record("r", 0))
    bus.publish(Record("r", 1))
    wait_until(lambda: len(seen) == 2 + 2 * 3)
    assert bus.flush(timeout=5)
    consumer.close()


def test_flush_from_a_consumer_callback_skips_its_own_subscriber(bus: EventBus) -> None:
    outcomes: list[bool] = []

    async def flushing(event: Event) -> None:
        outcomes.append(bus.flush(timeout=5))
        outcomes.append(await bus.aflush(timeout=5))

    consumer = bus.add_consumer(flushing, name="flushing")
    bus.publish(Record("r", 0))
    wait_until(lambda: len(outcomes) == 2, timeout=3)
    assert outcomes == [False, False]
    consumer.close()


def test_watch_collects_only_its_resource_until_closed(bus: EventBus) -> None:
    mine, other = Record("r1", 0), Record("r2", 1)
    with bus.watch("r1") as watch:
        bus.publish(mine)
        bus.publish(other)
        bus.publish(mine)
        assert watch.drain() == [mine, mine]  # as published, not materialised
        assert watch.drain() == []
    bus.publish(mine)
    assert watch.drain() == []


@pytest.mark.anyio
async def test_closing_a_subscription_stops_delivery_and_never_blocks(bus: EventBus) -> None:
    sub = bus.subscribe(lossless=True, buffer_size=1)
    bus.publish(Record("r", 0))
    sub.close()
    publisher = in_thread(lambda: [bus.publish(Record("r", i)) for i in range(10)])
    await anyio.to_thread.run_sync(publisher.join, 5)
    assert not publisher.is_alive()
    assert [item async for item in sub] == []
    assert await sub.get_batch() == []


@pytest.mark.anyio
async def test_detach_delivers_what_is_buffered_then_ends(bus: EventBus) -> None:
    sub = bus.subscribe(lossless=True)
    bus.publish(Record("r", 0))
    bus.publish(Record("r", 1))
    sub.detach()
    bus.publish(Record("r", 2))  # after detach: not taken
    assert seqs([item async for item in sub]) == [0, 1]
    assert await sub.get_batch() == []
    sub.close()


class Broken(Record):
    def to_event(self) -> Event:
        raise RuntimeError("cannot materialise")


@pytest.mark.anyio
async def test_an_item_that_cannot_be_materialised_is_logged_and_skipped(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    async with bus.subscribe(lossless=True, name="strict") as sub:
        bus.publish(Broken("r", 0))
        bus.publish(Record("r", 1))
        with anyio.fail_after(5):
            assert seqs([await sub.__anext__()]) == [1]
            flushed: list[bool] = []
            flushing = in_thread(lambda: flushed.append(bus.flush(timeout=5)))
            await anyio.to_thread.run_sync(wait_until, lambda: sub._buffer.flush_requested)
            bus.publish(Record("r", 2))
            assert seqs([await sub.__anext__()]) == [2]  # acks 1, passes the flush marker
            await anyio.to_thread.run_sync(flushing.join, 5)
            assert flushed == [True]
    assert any("strict" in r.getMessage() and r.exc_info for r in caplog.records)


def test_publisher_does_not_wait_for_a_consumer_whose_loop_is_gone(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    async def consume_once() -> Any:
        sub = bus.subscribe(lossless=True, buffer_size=1, name="orphan")
        bus.publish(Record("r", 0))
        await sub.__anext__()
        return sub  # kept alive, never closed, its loop ends

    holder: list[Any] = []
    in_thread(lambda: holder.append(asyncio.run(consume_once()))).join(5)
    publisher = in_thread(lambda: [bus.publish(Record("r", i)) for i in range(5)])
    publisher.join(5)
    assert not publisher.is_alive()
    assert holder[0].closed
    assert any("orphan" in r.getMessage() for r in caplog.records)


def test_subscribing_and_closing_while_threads_publish(bus: EventBus) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []

    def publish_forever() -> None:
        try:
            while not stop.is_set():
                bus.publish(Record("r", 0))
        except BaseException as exc:
            errors.append(exc)

    publishers = [in_thread(publish_forever) for _ in range(3)]
    for _ in range(200):
        bus.subscribe(lossless=True, buffer_size=4).close()
        bus.subscribe(buffer_size=4).close()
        bus.watch("r").close()
    stop.set()
    for thread in publishers:
        thread.join(5)
    assert errors == [] and not any(t.is_alive() for t in publishers)
    assert not bus.has_subscribers


def test_forked_child_gets_a_clean_bus_and_service() -> None:
    parent_bus = get_bus()
    sub = parent_bus.subscribe(lossless=True, buffer_size=1)
    parent_bus.publish(Record("r", 0))  # full: a child inheriting it would block
    get_service_loop().start()
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            bus = get_bus()
            bus.publish(Record("r", 1))
            clean = bus is not parent_bus and get_service_loop().thread is None
            os.write(write, b"clean" if clean else b"dirty")
        finally:
            os._exit(0)
    os.close(write)
    try:
        assert os.read(read, 16) == b"clean"
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(read)
        sub.close()


@pytest.mark.anyio
async def test_a_flush_does_not_wait_for_a_caught_up_consumer_to_read_again(
    bus: EventBus,
) -> None:
    sub = bus.subscribe(lossless=True, buffer_size=10)
    for i in range(3):
        bus.publish(Record("r", i))
    with anyio.fail_after(5):
        batch = await sub.get_batch(10, max_latency=0)
    sub.ack()  # everything processed; the consumer now reads no more
    assert seqs(batch) == [0, 1, 2]
    # before the fix the marker waited for a read that never comes: flush() said False
    assert await anyio.to_thread.run_sync(bus.flush, 0.5)
    bus.publish(Record("r", 3))  # and the queued marker does not disturb the next read
    with anyio.fail_after(5):
        assert seqs(await sub.get_batch(10, max_latency=0)) == [3]
    sub.close()
