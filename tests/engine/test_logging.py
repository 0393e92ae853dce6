"""Run logging: ``get_run_logger``, ``log_prints``, and leaving the application's logging alone."""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

import pytest

from headwater import flow, get_run_logger, task
from headwater.engine import logging as engine_logging
from headwater.exceptions import MissingContextError
from headwater.logging import get_logger
from headwater.settings import temporary_settings


def _records(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.getMessage() == message]


def test_flow_run_logger_carries_the_run(caplog) -> None:
    @flow(flow_run_name="logging-flow-run")
    def pipeline() -> None:
        get_run_logger().info("in the flow")

    state = pipeline(return_state=True)
    [record] = _records(caplog, "in the flow")
    assert record.name == "headwater.flow_runs"
    assert record.levelno == logging.INFO
    assert record.flow_run_id == str(state.state_details.flow_run_id)
    assert record.flow_run_name == "logging-flow-run"
    assert record.flow_name == "pipeline"
    assert not hasattr(record, "task_run_id")


def test_task_run_logger_carries_the_task_and_flow_run(caplog) -> None:
    @task(task_run_name="logging-task-run")
    def step() -> str:
        get_run_logger().warning("in the task")
        return "ok"

    states: list[Any] = []

    @flow(flow_run_name="logging-parent")
    def pipeline() -> None:
        states.append(step(return_state=True))

    pipeline()
    [task_state] = states
    [record] = _records(caplog, "in the task")
    assert record.name == "headwater.task_runs"
    assert record.task_run_name == "logging-task-run"
    assert record.task_run_id == str(task_state.state_details.task_run_id)
    assert record.task_name == "step"
    assert record.flow_run_id == str(task_state.state_details.flow_run_id)
    assert record.flow_run_name == "logging-parent"


def test_run_logger_accepts_extra_fields(caplog) -> None:
    @flow
    def pipeline() -> None:
        get_run_logger(stage="load").info("with extra", extra={"rows": 3})

    pipeline()
    [record] = _records(caplog, "with extra")
    assert (record.stage, record.rows) == ("load", 3)


def test_get_run_logger_outside_a_run_raises() -> None:
    with pytest.raises(MissingContextError, match="outside of a flow or task run"):
        get_run_logger()
    assert issubclass(MissingContextError, RuntimeError)


def test_get_run_logger_in_a_user_thread_without_context_raises() -> None:
    errors: list[BaseException] = []

    @flow
    def pipeline() -> None:
        def work() -> None:
            try:
                get_run_logger()
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()

    pipeline()
    assert len(errors) == 1 and isinstance(errors[0], MissingContextError)


def test_get_logger_is_in_headwater_tree() -> None:
    assert get_logger().name == "headwater"
    assert get_logger("custom").name == "headwater.custom"


def test_log_prints_on_a_flow_goes_to_the_run_logger(caplog, capsys) -> None:
    @flow(log_prints=True)
    def pipeline() -> None:
        print("printed", "in flow", sep="-")

    state = pipeline(return_state=True)
    [record] = _records(caplog, "printed-in flow")
    assert record.levelno == logging.INFO
    assert record.flow_run_id == str(state.state_details.flow_run_id)
    assert "printed" not in capsys.readouterr().out


def test_print_outside_runs_is_untouched(caplog, capsys) -> None:
    @flow(log_prints=True)
    def pipeline() -> None:
        print("inside")

    pipeline()
    print("outside after")
    assert capsys.readouterr().out == "outside after\n"
    assert not _records(caplog, "outside after")


def test_print_is_untouched_in_a_flow_without_log_prints(caplog, capsys) -> None:
    @flow(log_prints=False)
    def pipeline() -> None:
        print("plain print")

    pipeline()
    assert "plain print" in capsys.readouterr().out
    assert not _records(caplog, "plain print")


def test_log_prints_on_a_task(caplog, capsys) -> None:
    @task(log_prints=True)
    def noisy() -> None:
        print("from task")

    states: list[Any] = []

    @flow
    def pipeline() -> None:
        print("from flow")
        states.append(noisy(return_state=True))

    pipeline()
    [task_state] = states
    [record] = _records(caplog, "from task")
    assert record.task_run_id == str(task_state.state_details.task_run_id)
    out = capsys.readouterr().out
    assert "from flow" in out and "from task" not in out
    assert not _records(caplog, "from flow")


def test_tasks_inherit_log_prints_unless_they_opt_out(caplog, capsys) -> None:
    @task
    def inherits() -> None:
        print("inherited print")

    @task(log_prints=False)
    def opts_out() -> None:
        print("opted-out print")

    @flow(log_prints=True)
    def pipeline() -> None:
        inherits()
        inherits.submit().wait()
        opts_out()

    pipeline()
    assert len(_records(caplog, "inherited print")) == 2
    assert not _records(caplog, "opted-out print")
    out = capsys.readouterr().out
    assert "opted-out print" in out and "inherited print" not in out


def test_log_prints_leaves_other_files_alone(caplog, capsys) -> None:
    @flow(log_prints=True)
    def pipeline() -> None:
        print("to stderr", file=sys.stderr)

    pipeline()
    assert "to stderr" in capsys.readouterr().err
    assert not _records(caplog, "to stderr")


@pytest.mark.anyio
async def test_log_prints_in_an_async_flow(caplog, capsys) -> None:
    @flow(log_prints=True)
    async def pipeline() -> None:
        print("async print")

    await pipeline()
    assert len(_records(caplog, "async print")) == 1
    assert "async print" not in capsys.readouterr().out


def test_running_a_flow_leaves_the_root_logger_alone() -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    @flow(log_prints=True)
    def pipeline() -> None:
        get_run_logger().error("an error")
        print("a print")

    pipeline()
    assert root.handlers == handlers
    assert root.level == level


def test_first_configuration_never_touches_the_root_logger(monkeypatch) -> None:
    # simulate an application that configured nothing, and headwater's first run
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", logging.ERROR)
    names = ("headwater", engine_logging.FLOW_RUN_LOGGER, engine_logging.TASK_RUN_LOGGER)
    for name in names:
        monkeypatch.setattr(logging.getLogger(name), "handlers", [])
    monkeypatch.setattr(engine_logging, "_configured", False)
    with temporary_settings(logging_to_console=True):
        engine_logging.configure_run_logging()
    assert root.handlers == []
    assert root.level == logging.ERROR
    console = logging.getLogger("headwater").handlers
    assert len(console) == 1 and isinstance(console[0], logging.StreamHandler)


def test_first_configuration_adds_no_console_when_the_app_has_logging(monkeypatch) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [logging.NullHandler()])
    monkeypatch.setattr(logging.getLogger("headwater"), "handlers", [])
    for name in (engine_logging.FLOW_RUN_LOGGER, engine_logging.TASK_RUN_LOGGER):
        monkeypatch.setattr(logging.getLogger(name), "handlers", [])
    monkeypatch.setattr(engine_logging, "_configured", False)
    with temporary_settings(logging_to_console=True):
        engine_logging.configure_run_logging()
    assert logging.getLogger("headwater").handlers == []


def test_logs_in_worker_threads_carry_the_task_run(caplog) -> None:
    @task
    def worker() -> str:
        get_run_logger().info("from a worker thread")
        return threading.current_thread().name

    @flow
    def pipeline() -> tuple[str, str, str]:
        future = worker.submit()
        return future.result(), future.task_run.name, str(future.task_run_id)

    thread, task_run_name, task_run_id = pipeline()
    [record] = _records(caplog, "from a worker thread")
    assert thread.startswith("headwater-task")
    assert record.threadName == thread
    assert record.task_run_name == task_run_name
    assert record.task_run_id == task_run_id


def test_log_sinks_receive_run_records_until_removed() -> None:
    received: list[str] = []

    class Sink:
        def receive(self, record: logging.LogRecord) -> None:
            received.append(record.getMessage())

    sink = Sink()

    @flow
    def pipeline(message: str) -> None:
        get_run_logger().info(message)

    # a bound method is a new object on each access: add and remove must still pair up
    engine_logging.add_log_sink(sink.receive)
    try:
        pipeline("to the sink")
    finally:
        engine_logging.remove_log_sink(sink.receive)
    pipeline("after removal")
    assert "to the sink" in received
    assert "after removal" not in received
