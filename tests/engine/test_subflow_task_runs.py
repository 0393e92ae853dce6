"""A subflow stands in its parent flow as a task run, as in Prefect."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from headwater import flow
from headwater.events import get_bus
from headwater.settings import temporary_settings
from headwater.storage import stop_persistence


@flow
def child(x: int) -> int:
    if x < 0:
        raise ValueError("negative")
    return x * 2


@flow
def parent() -> int:
    first = child(1)
    second = child(2)
    try:
        child(-1)
    except ValueError:
        pass
    return first + second


def _rows(home: Path, sql: str) -> list[tuple]:
    connection = sqlite3.connect(home / "headwater.db")
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def test_each_subflow_call_is_a_task_run_of_its_parent_with_the_subflows_states(
    tmp_path: Path,
) -> None:
    with temporary_settings(home=tmp_path, database_url=None):
        try:
            assert parent() == 6
            get_bus().flush(timeout=10)
        finally:
            stop_persistence()
    (parent_id,) = _rows(tmp_path, "SELECT id FROM flow_runs WHERE flow_name = 'parent'")[0]
    placeholders = _rows(
        tmp_path,
        "SELECT id, name, state_name, flow_run_id FROM task_runs ORDER BY name",
    )
    assert [(name, state) for _, name, state, _ in placeholders] == [
        ("child-0", "Completed"),
        ("child-1", "Completed"),
        ("child-2", "Failed"),
    ]
    assert {flow_run for *_, flow_run in placeholders} == {parent_id}
    children = _rows(
        tmp_path,
        "SELECT parent_flow_run_id, parent_task_run_id, state_name FROM flow_runs"
        " WHERE flow_name = 'child' ORDER BY created",
    )
    assert [row[0] for row in children] == [parent_id] * 3
    assert sorted(row[1] for row in children) == sorted(p[0] for p in placeholders)


@pytest.mark.anyio
async def test_an_async_subflow_has_its_task_run_too(tmp_path: Path) -> None:
    @flow
    async def inner() -> str:
        return "ok"

    @flow
    async def outer() -> str:
        return await inner()

    with temporary_settings(home=tmp_path, database_url=None):
        try:
            assert await outer() == "ok"
            get_bus().flush(timeout=10)
        finally:
            stop_persistence()
    assert _rows(tmp_path, "SELECT name, state_name FROM task_runs") == [("inner-0", "Completed")]
