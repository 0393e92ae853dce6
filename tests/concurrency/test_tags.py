"""Tag concurrency: a task run takes one slot on ``tag:<tag>`` for each limited tag."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

import pytest

from headwater import flow, task
from headwater.concurrency import (
    create_concurrency_limit,
    delete_concurrency_limit,
    read_concurrency_limit,
)
from headwater.concurrency.task_slots import acquire_task_slots
from headwater.engine.runs import TaskRun
from headwater.engine.task_slots import NO_SLOTS
from headwater.exceptions import ConcurrencySlotAcquisitionError
from headwater.settings import temporary_settings


class Gauge:
    """Counts task bodies running at once, and the most seen."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1


def test_submitted_tasks_never_exceed_the_tag_limit(home: Path) -> None:
    create_concurrency_limit("tag:db", 2)
    gauge = Gauge()

    @task(tags=["db"])
    def query(number: int) -> int:
        gauge.enter()
        time.sleep(0.05)
        gauge.leave()
        return number

    @flow
    def pipeline() -> list[int]:
        return [future.result() for future in [query.submit(n) for n in range(5)]]

    assert pipeline() == [0, 1, 2, 3, 4]
    assert gauge.peak <= 2
    assert read_concurrency_limit("tag:db").limit.active_slots == 0


def test_async_tasks_never_exceed_the_tag_limit(home: Path) -> None:
    create_concurrency_limit("tag:db", 2)
    gauge = Gauge()

    @task(tags=["db", "unlimited"])
    async def query(number: int) -> int:
        gauge.enter()
        await asyncio.sleep(0.05)
        gauge.leave()
        return number

    @flow
    async def pipeline() -> list[int]:
        return list(await asyncio.gather(*[query(n) for n in range(5)]))

    assert asyncio.run(pipeline()) == [0, 1, 2, 3, 4]
    assert gauge.peak <= 2
    assert read_concurrency_limit("tag:db").limit.active_slots == 0


def test_a_task_holds_one_slot_per_limited_tag_while_running(home: Path) -> None:
    create_concurrency_limit("tag:a", 3)
    create_concurrency_limit("tag:b", 3)
    seen: dict[str, int] = {}

    @task(tags=["a", "b", "c"])
    def inside() -> None:
        for name in ("tag:a", "tag:b"):
            seen[name] = read_concurrency_limit(name).limit.active_slots
        holder = read_concurrency_limit("tag:a").leases[0].holder
        assert holder is not None and holder["type"] == "task_run"

    @flow
    def pipeline() -> None:
        inside()

    pipeline()
    assert seen == {"tag:a": 1, "tag:b": 1}
    assert read_concurrency_limit("tag:a").limit.active_slots == 0


def test_a_waiting_task_stays_pending_and_says_so_once(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    create_concurrency_limit("tag:db", 1)
    caplog.set_level(logging.INFO, logger="headwater.task_runs")

    @task(tags=["db"])
    def query() -> None:
        time.sleep(0.1)

    @flow
    def pipeline() -> None:
        futures = [query.submit() for _ in range(2)]
        for future in futures:
            future.wait()

    pipeline()
    waits = [record for record in caplog.records if "concurrency slot" in record.getMessage()]
    assert len(waits) == 1
    assert "'tag:db'" in waits[0].getMessage()


def test_a_tag_limit_of_zero_aborts_the_task_run(home: Path) -> None:
    create_concurrency_limit("tag:frozen", 0)

    @task(tags=["frozen"])
    def never() -> None:
        pytest.fail("a task with a tag limited to 0 must not run")

    @flow
    def pipeline() -> None:
        never()

    with pytest.raises(ConcurrencySlotAcquisitionError, match="tag:frozen"):
        pipeline()


def test_a_limit_made_in_this_process_applies_at_once(home: Path) -> None:
    @task(tags=["db"])
    def query() -> int:
        return read_concurrency_limit("tag:db").limit.active_slots

    @flow
    def pipeline() -> int:
        return query()

    create_concurrency_limit("tag:db", 1)
    assert pipeline() == 1
    delete_concurrency_limit("tag:db")
    create_concurrency_limit("tag:db", 2, active=False)
    assert pipeline() == 0  # inactive: no slot taken


def test_untagged_and_unlimited_task_runs_touch_no_database(tmp_path: Path) -> None:
    with temporary_settings(home=tmp_path, database_url=None, events_enabled=False):
        untagged = TaskRun("key", "t", "t-0", (), None)
        assert acquire_task_slots(untagged) is NO_SLOTS
        tagged = TaskRun("key", "t", "t-0", ("etl",), None)
        with acquire_task_slots(tagged):
            pass
        assert acquire_task_slots(tagged) is NO_SLOTS  # the answer is cached
    assert not (tmp_path / "headwater.db").exists()
