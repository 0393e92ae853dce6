"""One lifecycle for every service: start once per settings, remember failures, stop in order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from headwater import lifecycle
from headwater.exceptions import StorageError
from headwater.lifecycle import ServiceSpec
from headwater.settings import Settings, temporary_settings

log: list[str] = []


class Recorder:
    """A service that records when it is opened, closed and asked to flush."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._closed = anyio.Event()

    async def serve(self) -> None:
        await self._closed.wait()

    async def aclose(self, timeout: float) -> None:
        log.append(f"stop {self.name}")
        self._closed.set()


def spec(name: str, *, stops_before: tuple[str, ...] = (), **options: Any) -> ServiceSpec[Any]:
    async def open_service(settings: Settings, explicit: bool) -> Recorder:
        log.append(f"open {name}")
        return Recorder(name)

    return ServiceSpec(
        name=name,
        key=lambda settings: settings.home,
        open=options.pop("open", open_service),
        stops_before=stops_before,
        **options,
    )


@pytest.fixture(autouse=True)
def clean(tmp_path: Path) -> Iterator[None]:
    log.clear()
    with temporary_settings(home=tmp_path):
        yield
    lifecycle.stop_all()


def test_a_service_starts_once_and_stops_in_the_declared_order_not_the_start_order() -> None:
    store = spec("store")
    reactor = spec("reactor", stops_before=("store",))
    first = lifecycle.ensure(store)
    assert lifecycle.ensure(store) is first  # the fast path: no second open
    lifecycle.ensure(reactor)
    ours = {"store", "reactor"}
    assert [name for name in lifecycle.running() if name in ours] == ["reactor", "store"]
    lifecycle.stop_all()
    assert log == ["open store", "open reactor", "stop reactor", "stop store"]
    assert lifecycle.get(store) is None and not ours & set(lifecycle.running())


def test_other_settings_restart_the_service_with_them(tmp_path: Path) -> None:
    store = spec("store")
    first = lifecycle.ensure(store)
    with temporary_settings(home=tmp_path / "other"):
        second = lifecycle.ensure(store)
    assert second is not first
    assert log == ["open store", "stop store", "open store"]


def test_a_key_of_none_means_not_in_this_process() -> None:
    off = ServiceSpec(name="off", key=lambda settings: None, open=spec("x").open)
    assert lifecycle.ensure(off) is None
    assert log == []


def test_a_failed_start_is_remembered_and_raised_again_without_a_new_attempt() -> None:
    async def broken(settings: Settings, explicit: bool) -> Recorder:
        log.append("attempt")
        raise StorageError("/data/h.db", "disk on fire")

    failing = spec("failing", open=broken, errors=(StorageError,))
    for _ in range(3):
        with pytest.raises(StorageError, match="disk on fire"):
            lifecycle.ensure(failing)
    assert log == ["attempt"]
    lifecycle.stop(failing)  # forgets the failure
    with pytest.raises(StorageError):
        lifecycle.ensure(failing)
    assert log == ["attempt", "attempt"]


def test_a_failure_that_must_not_raise_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(settings: Settings, explicit: bool) -> Recorder:
        raise StorageError("/data/h.db", "no database")

    quiet = spec(
        "quiet",
        open=broken,
        errors=(StorageError,),
        raises=lambda settings, explicit: False,
        unavailable="quiet service is off: %s",
    )
    assert lifecycle.ensure(quiet) is None
    assert lifecycle.ensure(quiet) is None
    messages = [r.getMessage() for r in caplog.records if "quiet service" in r.getMessage()]
    assert messages == ["quiet service is off: headwater database /data/h.db: no database"]


def test_an_empty_start_is_retried_after_its_interval_or_when_forgotten() -> None:
    answers = [None, None, Recorder("late")]

    async def maybe(settings: Settings, explicit: bool) -> Recorder | None:
        log.append("look")
        return answers.pop(0)

    lazy = spec("lazy", open=maybe, retry_after=3600.0)
    assert lifecycle.ensure(lazy) is None
    assert lifecycle.ensure(lazy) is None
    assert log == ["look"]  # remembered
    lifecycle.forget("lazy")
    assert lifecycle.ensure(lazy) is None
    assert lifecycle.ensure(lazy, explicit=True) is not None  # on purpose: look again
    assert log == ["look", "look", "look"]


def test_the_check_runs_on_the_fast_path_and_its_error_reaches_the_caller() -> None:
    broken = {"now": False}

    def check(service: Recorder, settings: Settings) -> None:
        if broken["now"]:
            raise StorageError("/data/h.db", "writes are failing")

    checked = spec("checked", check=check)
    assert lifecycle.ensure(checked) is not None
    broken["now"] = True
    with pytest.raises(StorageError, match="writes are failing"):
        lifecycle.ensure(checked)


def test_started_and_stopped_run_in_the_callers_thread() -> None:
    seen: list[str] = []
    hooked = spec(
        "hooked",
        started=lambda service, settings: seen.append(f"started {service.name}"),
        stopped=lambda service: seen.append(f"stopped {service.name}"),
    )
    lifecycle.ensure(hooked)
    lifecycle.stop(hooked)
    assert seen == ["started hooked", "stopped hooked"]


_PROCESS = """
import os, signal, sys
from pathlib import Path
import anyio
from headwater import lifecycle
from headwater.lifecycle import ServiceSpec

out = Path(sys.argv[1])

class Service:
    def __init__(self, name):
        self.name, self.done = name, anyio.Event()
    async def serve(self):
        await self.done.wait()
    async def aclose(self, timeout):
        with out.open("a") as f:
            f.write(f"stop {self.name}\\n")
        self.done.set()

def make(name, **options):
    async def open_service(settings, explicit):
        return Service(name)
    def flushed(service):
        with out.open("a") as f:
            f.write(f"sigterm {service.name}\\n")
    return ServiceSpec(name=name, key=lambda s: s.home, open=open_service,
                       on_sigterm=flushed, **options)

lifecycle.ensure(make("store"))
lifecycle.ensure(make("reactor", stops_before=("store",)))
mode = sys.argv[2]
if mode == "fork":
    pid = os.fork()
    if pid == 0:
        os._exit(0 if lifecycle.running() == [] else 3)
    _, status = os.waitpid(pid, 0)
    with out.open("a") as f:
        f.write(f"child {os.waitstatus_to_exitcode(status)} parent {lifecycle.running()}\\n")
elif mode == "sigterm":
    os.kill(os.getpid(), signal.SIGTERM)
    import time
    time.sleep(30)
"""


def _run(tmp_path: Path, mode: str) -> tuple[int, list[str]]:
    out = tmp_path / "out.txt"
    env = {**os.environ, "HEADWATER_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_PROCESS), str(out), mode],
        env=env,
        timeout=60,
        capture_output=True,
        text=True,
    )
    lines = out.read_text().splitlines() if out.exists() else []
    return done.returncode, lines


def test_at_exit_every_service_stops_in_order(tmp_path: Path) -> None:
    code, lines = _run(tmp_path, "exit")
    assert code == 0
    assert lines == ["stop reactor", "stop store"]


def test_sigterm_flushes_every_service_then_terminates_by_the_signal(tmp_path: Path) -> None:
    code, lines = _run(tmp_path, "sigterm")
    assert code == -signal.SIGTERM
    assert lines == ["sigterm reactor", "sigterm store"]


def test_a_forked_child_starts_with_no_services(tmp_path: Path) -> None:
    code, lines = _run(tmp_path, "fork")
    assert code == 0
    assert lines[0] == "child 0 parent ['reactor', 'store']"
    assert lines[1:] == ["stop reactor", "stop store"]
