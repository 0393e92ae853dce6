"""The outbox: ordered, owned rows, released at close and adopted from processes that are gone."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater.client.outbox import Outbox, orphaned_owners, outbox_path
from headwater.exceptions import StorageError

pytestmark = pytest.mark.anyio


async def test_rows_come_back_in_order_and_go_once_confirmed(tmp_path: Path) -> None:
    outbox = await Outbox.open(tmp_path / "outbox.db")
    try:
        await outbox.append([b'{"n":1}', b'{"n":2}'])
        await outbox.append([b'{"n":3}'])
        rows = await outbox.peek(2, 1_000_000)
        assert [data for _, data in rows] == [b'{"n":1}', b'{"n":2}']
        await outbox.remove([seq for seq, _ in rows])
        assert [data for _, data in await outbox.peek(10, 1_000_000)] == [b'{"n":3}']
        assert await outbox.pending() == 1
    finally:
        assert await outbox.close() == 1


async def test_peek_stops_near_the_byte_budget_but_returns_one_row(tmp_path: Path) -> None:
    outbox = await Outbox.open(tmp_path / "outbox.db")
    try:
        await outbox.append([b"x" * 100] * 5)
        assert len(await outbox.peek(10, 250)) == 3
        assert len(await outbox.peek(10, 1)) == 1
    finally:
        await outbox.close()


async def test_released_rows_are_adopted_by_the_next_process(tmp_path: Path) -> None:
    first = await Outbox.open(tmp_path / "outbox.db")
    await first.append([b"a", b"b"])
    assert await first.close() == 2
    second = await Outbox.open(tmp_path / "outbox.db")
    try:
        assert await second.peek(10, 1000) == []  # not ours until adopted
        assert await second.adopt() == 2
        assert [data for _, data in await second.peek(10, 1000)] == [b"a", b"b"]
    finally:
        await second.close()


async def test_rows_of_a_live_owner_are_not_adopted(tmp_path: Path) -> None:
    first = await Outbox.open(tmp_path / "outbox.db")
    second = await Outbox.open(tmp_path / "outbox.db")
    try:
        await first.append([b"mine"])
        assert await second.adopt() == 0  # same host, and the owner (this process) is alive
    finally:
        await second.close()
        await first.close()


def test_orphaned_owners_by_pid_on_this_host_and_by_heartbeat_elsewhere() -> None:
    owners = [
        ("me", "here", 10, 100.0),
        ("alive", "here", 11, 0.0),
        ("dead", "here", 12, 100.0),
        ("reused", "here", 10, 100.0),
        ("remote-fresh", "there", 13, 950.0),
        ("remote-stale", "there", 14, 500.0),
    ]
    gone = orphaned_owners(
        owners, ours={"me"}, hostname="here", now=1000.0, own_pid=10, alive=lambda pid: pid != 12
    )
    assert gone == ["dead", "reused", "remote-stale"]


async def test_an_unusable_outbox_names_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(StorageError, match="not-a-directory"):
        await Outbox.open(blocker / "outbox.db")
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"garbage " * 512)
    with pytest.raises(StorageError, match="corrupt.db"):
        await Outbox.open(corrupt)


def test_outbox_path_defaults_to_the_home(tmp_path: Path) -> None:
    assert outbox_path(tmp_path, None) == tmp_path / "outbox.db"
    assert outbox_path(tmp_path, tmp_path / "x.db") == tmp_path / "x.db"
