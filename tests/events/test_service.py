"""Behaviour of headwater.events.service: lazy start, hosted tasks, draining stop, clean exit."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from headwater.events.bus import EventBus
from headwater.events.schema import RESOURCE_ID, Event
from headwater.events.service import ServiceLoop, get_service_loop


@pytest.fixture
def service() -> Iterator[ServiceLoop]:
    """A service loop of its own (not the process-wide one), stopped after the test."""
    service = ServiceLoop(name="test-services")
    yield service
    assert service.stop(timeout=5)


def make_event(seq: int) -> Event:
    return Event(event="test.happened", resource={RESOURCE_ID: "r"}, payload={"seq": seq})


def test_starts_lazily_in_a_daemon_thread(service: ServiceLoop) -> None:
    assert service.thread is None and service.loop is None and not service.is_running
    ran = threading.Event()

    async def job() -> None:
        ran.set()

    service.start_soon(job)
    assert ran.wait(5)
    assert service.thread is not None and service.thread.daemon and service.thread.is_alive()
    assert service.thread.name == "test-services" and service.is_running


def test_the_process_wide_service_loop_is_one_object_named_headwater_services() -> None:
    assert get_service_loop() is get_service_loop()
    get_service_loop().start()
    thread = get_service_loop().thread
    assert thread is not None and thread.name == "headwater-services" and thread.daemon


def test_stop_joins_the_thread_and_the_loop_can_start_again(service: ServiceLoop) -> None:
    service.start()
    thread = service.thread
    assert thread is not None
    assert service.stop(timeout=5)
    assert not thread.is_alive() and service.thread is None

    async def again() -> str:
        return "again"

    assert service.run_coroutine(again(), timeout=5) == "again"


def test_run_coroutine_returns_the_result_from_the_service_thread(service: ServiceLoop) -> None:
    async def where() -> str:
        await anyio.sleep(0)
        return threading.current_thread().name

    assert service.run_coroutine(where(), timeout=5) == "test-services"


def test_run_coroutine_raises_what_the_coroutine_raised(service: ServiceLoop) -> None:
    async def fail() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        service.run_coroutine(fail(), timeout=5)


def test_run_coroutine_timeout_cancels_the_coroutine(service: ServiceLoop) -> None:
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await anyio.sleep(60)
        finally:
            cancelled.set()

    with pytest.raises(TimeoutError):
        service.run_coroutine(forever(), timeout=0.05)
    assert cancelled.wait(5)


def test_run_coroutine_on_the_service_thread_refuses_to_deadlock(service: ServiceLoop) -> None:
    errors: list[BaseException] = []

    async def nested() -> None:
        try:
            service.run_coroutine(anyio.sleep(0), timeout=1)
        except RuntimeError as exc:
            errors.append(exc)

    service.run_coroutine(nested(), timeout=5)
    assert len(errors) == 1 and "deadlock" in str(errors[0])


def test_call_soon_runs_on_the_service_thread(service: ServiceLoop) -> None:
    names: list[str] = []
    done = threading.Event()
    service.call_soon(lambda: (names.append(threading.current_thread().name), done.set()))
    assert done.wait(5) and names == ["test-services"]


def test_a_crashing_task_is_logged_and_spares_the_others(
    service: ServiceLoop, caplog: pytest.LogCaptureFixture
) -> None:
    ticks: list[int] = []

    async def crash() -> None:
        raise RuntimeError("service bug")

    async def tick() -> None:
        for i in range(3):
            await anyio.sleep(0.01)
            ticks.append(i)

    with caplog.at_level(logging.ERROR, logger="headwater.events"):
        service.start_soon(tick)
        service.start_soon(crash, name="crasher")
        deadline = time.monotonic() + 5
        while len(ticks) < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
    assert ticks == [0, 1, 2]
    assert any("crasher" in r.getMessage() and r.exc_info for r in caplog.records)


def test_stop_lets_hosted_tasks_drain_what_they_hold(service: ServiceLoop, bus: EventBus) -> None:
    seen: list[int] = []
    subscription = bus.subscribe(lossless=False, buffer_size=100, name="slow")

    async def slow() -> None:
        async for event in subscription:
            await anyio.sleep(0.001)
            seen.append(event.payload["seq"])
        subscription.close()

    service.host(slow, stop=subscription.detach, name="slow")
    for i in range(30):
        bus.publish(make_event(i))
    assert service.stop(timeout=5)
    assert seen == list(range(30))
    assert subscription.closed and not bus.has_subscribers


_EXIT_SCRIPT = """
import atexit, sys, threading, time

def report():  # registered before headwater's handler, so it runs after it
    names = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    print("threads after exit:", names, flush=True)

atexit.register(report)

from headwater.events.bus import get_bus
from headwater.events.schema import Event

out = open(sys.argv[1], "w")

def write(event):
    time.sleep(0.001)
    out.write(str(event.payload["seq"]) + "\\n")
    out.flush()

bus = get_bus()
# Room for everything: the script reaches its end with most events still unprocessed.
bus.add_consumer(write, lossless=True, buffer_size=1000, name="writer")
for i in range({n}):
    bus.publish(Event(event="test.happened", resource={{"headwater.resource.id": "r"}},
                      payload={{"seq": i}}))
print("published", flush=True)
"""


def test_interpreter_exit_flushes_lossless_consumers_and_stops(tmp_path: Path) -> None:
    n = 300
    script = tmp_path / "exit_script.py"
    script.write_text(textwrap.dedent(_EXIT_SCRIPT.format(n=n)))
    output = tmp_path / "processed.txt"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(script), str(output)], capture_output=True, text=True, timeout=30
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert output.read_text().split() == [str(i) for i in range(n)]
    assert "threads after exit: []" in done.stdout, done.stdout
    assert elapsed < 20
