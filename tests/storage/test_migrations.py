from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import msgspec
import pytest
from storage_helpers import T0, run_events

from headwater.exceptions import DatabaseCorruptError, SchemaVersionError
from headwater.storage.database import open_database
from headwater.storage.migrations import PAGE_SIZE, migrate, schema_version
from headwater.storage.queries import read_flow_run
from headwater.storage.rows import format_timestamp
from headwater.storage.schema import LATEST_VERSION, MIGRATIONS
from headwater.storage.sqlite import connect


def _tables(path: Path) -> set[str]:
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {row[0] for row in rows}
    finally:
        connection.close()


def _pragma(path: Path, name: str) -> object:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        connection.close()


def test_migrations_are_numbered_in_order() -> None:
    assert [migration.version for migration in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


@pytest.mark.anyio
async def test_a_new_file_gets_the_whole_schema_in_wal_mode(db_path: Path) -> None:
    database = await open_database(db_path)
    await database.close()
    assert _pragma(db_path, "user_version") == LATEST_VERSION
    assert _pragma(db_path, "journal_mode") == "wal"
    assert {
        "flows",
        "flow_runs",
        "task_runs",
        "events",
        "event_resources",
        "logs",
    } <= _tables(db_path)
    assert "run_states" not in _tables(db_path)
    assert _pragma(db_path, "page_size") == PAGE_SIZE


@pytest.mark.anyio
async def test_a_version_3_file_loses_run_states_and_keeps_its_history(db_path: Path) -> None:
    # A file written before state history was read from events: its run_states table goes,
    # and the history it held is still there, in the events.
    run_id = uuid.uuid4()
    events = run_events("flow-run", run_id)
    connection = await connect(db_path, busy_timeout=5)
    try:
        assert await migrate(connection, db_path, target=3) == 3
        # what a version-3 writer stored: the events, and the run's row in that day's columns
        for event in events:
            await connection.execute(
                "INSERT INTO events (id, occurred, event, resource_id, follows, received, data)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    str(event.id),
                    format_timestamp(event.occurred),
                    event.event,
                    event.resource["headwater.resource.id"],
                    None if event.follows is None else str(event.follows),
                    format_timestamp(T0),
                    msgspec.json.encode(event).decode(),
                ),
            )
        last = events[-1]
        await connection.execute(
            "INSERT INTO flow_runs (id, name, flow_name, state_id, state_type, state_name,"
            " state_timestamp, created) VALUES (?, 'old', 'etl', ?, ?, ?, ?, ?)",
            (
                str(run_id),
                str(last.id),
                last.payload["validated_state"]["type"],
                last.payload["validated_state"]["name"],
                format_timestamp(last.occurred),
                format_timestamp(events[0].occurred),
            ),
        )
        await connection.commit()
        await connection.execute(
            "INSERT INTO run_states (run_id, timestamp, id, type, name, message)"
            " VALUES (?, '2024-05-01T12:00:00.000000+00:00', ?, 'PENDING', 'Pending', '')",
            (str(run_id), str(events[0].id)),
        )
    finally:
        await connection.close()
    assert "run_states" in _tables(db_path)
    page_size = _pragma(db_path, "page_size")

    async with await open_database(db_path) as database:
        detail = await read_flow_run(database, run_id)

    assert "run_states" not in _tables(db_path)
    assert _pragma(db_path, "page_size") == page_size  # an existing file keeps its pages
    assert detail is not None
    assert [(state.name, state.id) for state in detail.states] == [
        (event.payload["validated_state"]["name"], event.id) for event in events
    ]


@pytest.mark.anyio
async def test_an_older_file_is_upgraded_in_place_keeping_its_rows(db_path: Path) -> None:
    connection = await connect(db_path, busy_timeout=5)
    try:
        assert await migrate(connection, db_path, target=1) == 1
        await connection.execute(
            "INSERT INTO flows (id, name, created) VALUES ('f-1', 'etl', '2024-01-01')"
        )
    finally:
        await connection.close()
    assert "logs" not in _tables(db_path)

    database = await open_database(db_path)
    await database.close()

    assert _pragma(db_path, "user_version") == LATEST_VERSION
    assert {"events", "logs"} <= _tables(db_path)
    connection2 = sqlite3.connect(db_path)
    try:
        assert connection2.execute("SELECT name FROM flows").fetchall() == [("etl",)]
    finally:
        connection2.close()


@pytest.mark.anyio
async def test_a_newer_file_is_refused_untouched_naming_file_and_versions(db_path: Path) -> None:
    database = await open_database(db_path)
    await database.close()
    connection = sqlite3.connect(db_path)
    connection.execute(f"PRAGMA user_version = {LATEST_VERSION + 5}")
    connection.close()

    with pytest.raises(SchemaVersionError) as caught:
        await open_database(db_path)

    message = str(caught.value)
    assert str(db_path) in message
    assert str(LATEST_VERSION + 5) in message and f"({LATEST_VERSION})" in message
    assert caught.value.found == LATEST_VERSION + 5
    assert _pragma(db_path, "user_version") == LATEST_VERSION + 5


@pytest.mark.anyio
async def test_a_sqlite_file_of_another_application_is_refused(db_path: Path) -> None:
    connection = sqlite3.connect(db_path)
    connection.execute("CREATE TABLE invoices (id INTEGER)")
    connection.close()

    with pytest.raises(DatabaseCorruptError, match="another application") as caught:
        await open_database(db_path)
    assert str(db_path) in str(caught.value)


@pytest.mark.anyio
async def test_migrating_twice_is_a_no_op(db_path: Path) -> None:
    connection = await connect(db_path, busy_timeout=5)
    try:
        assert await migrate(connection, db_path) == LATEST_VERSION
        assert await migrate(connection, db_path) == LATEST_VERSION
        assert await schema_version(connection) == LATEST_VERSION
    finally:
        await connection.close()
