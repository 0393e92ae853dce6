from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from pathlib import Path

import anyio
import pytest
from storage_helpers import run_events

from headwater.exceptions import DatabaseUnavailableError
from headwater.settings import Settings
from headwater.storage.database import open_database
from headwater.storage.writer import PersistenceWriter


def hold_write_lock(
    path: Path, seconds: float, locked: threading.Event, release: threading.Event
) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(seconds)
        connection.execute("COMMIT")
    finally:
        connection.close()


@pytest.mark.anyio
@pytest.mark.parametrize(("held", "succeeds"), [(0.3, True), (10.0, False)])
async def test_writes_retry_while_another_process_holds_the_lock(
    tmp_path: Path, held: float, succeeds: bool
) -> None:
    settings = Settings(home=tmp_path, database_busy_timeout=0.6)
    async with await open_database(settings=settings) as db:
        # No SQLite-level waiting: every conflict comes back as SQLITE_BUSY at once, so
        # only Database.write's own retry loop can ride it out.
        await db._writer.execute("PRAGMA busy_timeout = 0")
        locked, release = threading.Event(), threading.Event()
        holder = threading.Thread(target=hold_write_lock, args=(db.path, held, locked, release))
        holder.start()
        try:
            locked.wait(5)
            writer = PersistenceWriter(db)
            started = time.monotonic()
            if succeeds:
                await writer.write_events(run_events("flow-run", uuid.uuid4()))
                assert writer.committed_events == 3
                assert time.monotonic() - started >= 0.2
            else:
                with pytest.raises(DatabaseUnavailableError, match="busy timeout") as caught:
                    await writer.write_events(run_events("flow-run", uuid.uuid4()))
                assert str(db.path) in str(caught.value)
        finally:
            release.set()
            await anyio.to_thread.run_sync(holder.join)


@pytest.mark.anyio
async def test_a_failed_transaction_leaves_nothing_behind(db_path: Path) -> None:
    async with await open_database(db_path) as db:

        async def half_then_fail(connection):  # type: ignore[no-untyped-def]
            await connection.execute(
                "INSERT INTO flows (id, name, created) VALUES ('1', 'etl', 'now')"
            )
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await db.write(half_then_fail)
        async with db.read() as reader, reader.execute("SELECT count(*) FROM flows") as cursor:
            assert (await cursor.fetchone())[0] == 0  # type: ignore[index]
        # The connection is usable afterwards.
        await db.write(lambda c: c.execute("INSERT INTO flows VALUES ('2', 'b', 'now')"))


@pytest.mark.anyio
async def test_close_is_idempotent(db_path: Path) -> None:
    db = await open_database(db_path)
    async with db.read():
        pass
    await db.close()
    await db.close()
