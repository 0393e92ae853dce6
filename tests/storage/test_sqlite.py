"""Errors: one StorageError that names the file and the cause."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from storage_helpers import run_events

from headwater.exceptions import DatabaseCorruptError, DatabaseUnavailableError, StorageError
from headwater.settings import Settings
from headwater.storage.database import open_database
from headwater.storage.sqlite import database_path, is_busy, translate_error
from headwater.storage.writer import PersistenceWriter


@contextlib.contextmanager
def read_only_directory(path: Path) -> Iterator[None]:
    """Make ``path`` unwritable, even for root (chattr +i) when chmod is not enough."""
    path.chmod(0o555)
    immutable = False
    probe = path / "probe"
    try:
        try:
            probe.touch()
        except OSError:
            pass
        else:
            probe.unlink()
            if shutil.which("chattr") is None:
                pytest.skip("cannot make a directory read-only for this user")
            result = subprocess.run(["chattr", "+i", str(path)], capture_output=True)
            if result.returncode != 0:
                pytest.skip("cannot make a directory read-only for this user")
            immutable = True
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(0o755)


def test_database_path_comes_from_home_or_url(tmp_path: Path) -> None:
    assert database_path(Settings(home=tmp_path)) == tmp_path / "headwater.db"
    url = f"sqlite:///{tmp_path}/other.db"
    assert database_path(Settings(home=tmp_path, database_url=url)) == tmp_path / "other.db"
    url = f"sqlite+aiosqlite:///{tmp_path}/third.db"
    assert database_path(Settings(home=tmp_path, database_url=url)) == tmp_path / "third.db"
    with pytest.raises(DatabaseUnavailableError, match="only SQLite URLs"):
        database_path(Settings(home=tmp_path, database_url="postgresql://db/headwater"))


@pytest.mark.anyio
async def test_a_read_only_directory_gives_one_error_naming_the_file(tmp_path: Path) -> None:
    directory = tmp_path / "locked"
    directory.mkdir()
    target = directory / "headwater.db"
    with read_only_directory(directory), pytest.raises(DatabaseUnavailableError) as caught:
        await open_database(target)
    message = str(caught.value)
    assert str(target) in message
    assert "cannot open the file" in message or "read-only" in message
    assert "not writable" in message


@pytest.mark.anyio
async def test_a_directory_that_cannot_be_created_names_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    target = blocker / "headwater.db"
    with pytest.raises(DatabaseUnavailableError) as caught:
        await open_database(target)
    assert str(target) in str(caught.value)
    assert "cannot create or open the file" in str(caught.value)


@pytest.mark.anyio
async def test_a_corrupt_file_gives_one_error_naming_the_file(db_path: Path) -> None:
    db_path.write_bytes(b"this is not a database, just some bytes " * 200)
    with pytest.raises(DatabaseCorruptError) as caught:
        await open_database(db_path)
    assert str(caught.value) == f"headwater database {db_path}: the file is not a SQLite database"


@pytest.mark.anyio
async def test_a_full_disk_fails_the_write_with_a_clear_error(db_path: Path) -> None:
    import uuid

    database = await open_database(db_path)
    try:
        # max_page_count makes SQLite report SQLITE_FULL exactly as a full disk does.
        await database._writer.execute("PRAGMA max_page_count = 1")
        writer = PersistenceWriter(database)
        with pytest.raises(DatabaseUnavailableError) as caught:
            events = [e for _ in range(20) for e in run_events("flow-run", uuid.uuid4())]
            await writer.write_events(events)
        assert str(caught.value) == f"headwater database {db_path}: the disk is full"
        assert writer.committed_events == 0
    finally:
        await database.close()


def test_translate_error_recognises_busy_and_passes_storage_errors_through() -> None:
    busy = sqlite3.OperationalError("database is locked")
    assert is_busy(busy)
    assert not is_busy(sqlite3.OperationalError("no such table: x"))
    translated = translate_error(busy, "/x.db")
    assert isinstance(translated, DatabaseUnavailableError)
    assert "busy timeout" in str(translated)
    already = DatabaseCorruptError("/x.db", "damaged")
    assert translate_error(already, "/y.db") is already
    assert isinstance(
        translate_error(OSError(28, "No space left on device"), "/x.db"), StorageError
    )
    assert "disk is full" in str(translate_error(OSError(28, "No space"), "/x.db"))


def test_storage_errors_are_headwater_errors() -> None:
    from headwater.exceptions import HeadwaterError

    assert issubclass(StorageError, HeadwaterError)
    assert os.fspath(Path("/x.db")) in str(DatabaseCorruptError("/x.db", "bad"))


@pytest.mark.anyio
async def test_a_corruption_report_on_a_file_that_checks_ok_is_named_an_io_error(
    tmp_path: Path,
) -> None:
    db_path = tmp_path / "ok.db"
    database = await open_database(db_path)
    await database.close()
    error = sqlite3.DatabaseError("database disk image is malformed")
    translated = translate_error(error, db_path)
    assert isinstance(translated, DatabaseUnavailableError)
    assert "I/O error" in str(translated) and "checks ok" in str(translated)
    assert str(db_path) in str(translated)
    # a file that really is damaged is still called damaged
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(db_path.read_bytes()[:4096] + b"\x00garbage" * 2000)
    assert isinstance(translate_error(error, damaged), DatabaseCorruptError)
