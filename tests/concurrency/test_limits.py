"""Managing limits: headwater.concurrency's functions and ``headwater concurrency-limit``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from headwater.cli.app import cli
from headwater.concurrency import (
    ConcurrencyLimit,
    acreate_concurrency_limit,
    adelete_concurrency_limit,
    aread_concurrency_limit,
    areset_concurrency_limit,
    create_concurrency_limit,
    delete_concurrency_limit,
    read_concurrency_limit,
    read_concurrency_limits,
    reset_concurrency_limit,
    tag_limit_name,
    update_concurrency_limit,
)
from headwater.concurrency.sync import concurrency
from headwater.exceptions import ConcurrencyLimitExistsError, ConcurrencyLimitNotFound


def test_create_read_update_delete(home: Path) -> None:
    created = create_concurrency_limit("db", 3, slot_decay_per_second=0.5)
    assert isinstance(created, ConcurrencyLimit)
    assert (created.name, created.limit, created.active) == ("db", 3, True)
    assert created.slot_decay_per_second == 0.5 and created.active_slots == 0
    assert created.tag is None
    assert [limit.name for limit in read_concurrency_limits()] == ["db"]

    updated = update_concurrency_limit("db", limit=5, active=False)
    assert (updated.limit, updated.active) == (5, False)
    assert read_concurrency_limit("db").limit.limit == 5

    delete_concurrency_limit("db")
    assert read_concurrency_limits() == []


def test_tag_limits_are_named_after_the_tag(home: Path) -> None:
    created = create_concurrency_limit(tag_limit_name("etl"), 2)
    assert created.name == "tag:etl" and created.tag == "etl"


def test_errors_name_the_limit(home: Path) -> None:
    create_concurrency_limit("db", 1)
    with pytest.raises(ConcurrencyLimitExistsError, match="'db'"):
        create_concurrency_limit("db", 2)
    for call in (
        lambda: read_concurrency_limit("nope"),
        lambda: reset_concurrency_limit("nope"),
        lambda: delete_concurrency_limit("nope"),
        lambda: update_concurrency_limit("nope", limit=1),
    ):
        with pytest.raises(ConcurrencyLimitNotFound, match="'nope'"):
            call()


@pytest.mark.parametrize(
    ("name", "limit", "decay"),
    [("", 1, 0.0), ("db", -1, 0.0), ("db", True, 0.0), ("db", 1.5, 0.0), ("db", 1, -1.0)],
)
def test_bad_values_are_refused(home: Path, name: str, limit: object, decay: float) -> None:
    with pytest.raises(ValueError):
        create_concurrency_limit(name, limit, slot_decay_per_second=decay)  # type: ignore[arg-type]


def test_reset_frees_held_slots(home: Path) -> None:
    create_concurrency_limit("db", 2)
    with concurrency("db", occupy=2):
        detail = read_concurrency_limit("db")
        assert detail.limit.active_slots == 2 and len(detail.leases) == 1
        assert detail.leases[0].slots == 2
        assert reset_concurrency_limit("db").active_slots == 0
        assert read_concurrency_limit("db").leases == []


@pytest.mark.anyio
async def test_async_twins(home: Path) -> None:
    await acreate_concurrency_limit("db", 1)
    assert (await aread_concurrency_limit("db")).limit.limit == 1
    assert (await areset_concurrency_limit("db")).active_slots == 0
    await adelete_concurrency_limit("db")
    assert read_concurrency_limits() == []


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_cli_create_accepts_a_tag_name_or_the_tag_flag(home: Path) -> None:
    assert invoke("concurrency-limit", "create", "tag:etl", "2")[0] == 0
    assert invoke("concurrency-limit", "create", "--tag", "ml", "1")[0] == 0
    code, output = invoke("concurrency-limit", "create", "api", "5", "--slot-decay-per-second", "2")
    assert code == 0 and "'api'" in output
    names = {limit.name: limit for limit in read_concurrency_limits()}
    assert set(names) == {"tag:etl", "tag:ml", "api"}
    assert names["api"].slot_decay_per_second == 2.0


def test_cli_ls_inspect_reset_delete(home: Path) -> None:
    create_concurrency_limit("tag:etl", 2)
    code, output = invoke("concurrency-limit", "ls")
    assert code == 0 and "tag:etl" in output and "0/2" in output
    code, output = invoke("concurrency-limit", "ls", "-o", "json")
    assert json.loads(output.splitlines()[0])["name"] == "tag:etl"

    with concurrency("tag:etl"):
        code, output = invoke("concurrency-limit", "inspect", "--tag", "etl")
        assert code == 0 and "1/2" in output
        code, output = invoke("concurrency-limit", "inspect", "tag:etl", "-o", "json")
        assert len(json.loads(output)["leases"]) == 1
        assert invoke("concurrency-limit", "reset", "tag:etl")[0] == 0
        assert read_concurrency_limit("tag:etl").limit.active_slots == 0

    assert invoke("concurrency-limit", "delete", "--tag", "etl")[0] == 0
    assert read_concurrency_limits() == []


def test_cli_errors_are_one_line(home: Path) -> None:
    create_concurrency_limit("db", 1)
    code, output = invoke("concurrency-limit", "create", "db", "2")
    assert code == 2 and "exists" in output
    code, output = invoke("concurrency-limit", "delete", "nope")
    assert code == 2 and "'nope'" in output
    code, _ = invoke("concurrency-limit", "create", "db2", "-1")
    assert code == 2


def test_reading_releases_slots_nobody_holds(home: Path) -> None:
    import socket
    import subprocess
    import time

    from headwater.concurrency.slots import LeaseRequest, try_acquire
    from headwater.storage.sync_connection import get_sync_connection

    create_concurrency_limit("db", 5)
    finished = subprocess.Popen(["true"])
    finished.wait()  # reaped: its pid names no process now
    with get_sync_connection().write() as connection:
        for lease_id, pid, duration in (("dead", finished.pid, 60.0), ("expired", 1, -1.0)):
            request = LeaseRequest(lease_id, None, pid, socket.gethostname(), duration)
            try_acquire(
                connection,
                ["db"],
                1,
                lease=request,
                strict=False,
                now=time.time(),
                is_stale=lambda pid, host: False,
            )
    detail = read_concurrency_limit("db")
    assert detail.limit.active_slots == 0 and detail.leases == []
