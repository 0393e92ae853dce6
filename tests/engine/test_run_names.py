"""Run name callables that read headwater.runtime, and renamed runs as stored."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from headwater import flow, runtime, task
from headwater.events import get_bus
from headwater.settings import temporary_settings
from headwater.storage import stop_persistence


def _flow_name_from_runtime() -> str:
    return f"report-{runtime.flow_run.parameters['region']}"


def _task_name_from_runtime() -> str:
    return f"fetch-{runtime.task_run.parameters['city']}"


@task(task_run_name=_task_name_from_runtime)
def fetch(city: str) -> str:
    return runtime.task_run.name


@flow(flow_run_name=_flow_name_from_runtime)
def report(region: str) -> tuple[str, str]:
    return runtime.flow_run.name, fetch("oslo")


def test_name_callables_read_parameters_through_runtime_as_in_prefect() -> None:
    assert report("eu") == ("report-eu", "fetch-oslo")


def test_a_short_renamed_flow_is_stored_under_its_templated_name(tmp_path: Path) -> None:
    with temporary_settings(home=tmp_path, database_url=None):
        try:
            assert report("us")[0] == "report-us"
            get_bus().flush(timeout=10)
        finally:
            stop_persistence()
    connection = sqlite3.connect(tmp_path / "headwater.db")
    try:
        names = connection.execute("SELECT name FROM flow_runs").fetchall()
    finally:
        connection.close()
    assert names == [("report-us",)]
