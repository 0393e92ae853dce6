"""With HEADWATER_API_URL set, the reading commands ask the server, not the local file."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from client_helpers import ServerProcess, client_env, finish, run_flow, wait_until

from headwater.cli.app import cli
from headwater.events.schema import RESOURCE_ID
from headwater.settings import SecretValue, temporary_settings


@pytest.fixture(scope="module")
def forwarded(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A flow run (3 tasks) forwarded to the module's server by another process."""
    home = tmp_path_factory.mktemp("client")
    [report], _ = finish(run_flow(client_env(home, server.api_url), count=3))
    server.finished_run(report["flow_run_id"])
    return report


@pytest.fixture
def remote(server: ServerProcess, tmp_path: Path) -> Iterator[None]:
    """This process's commands talk to the server (an empty local home beside it)."""
    with temporary_settings(home=tmp_path, database_url=None, api_url=server.api_url):
        yield


def server_events(server: ServerProcess, prefix: str, limit: int) -> list[dict[str, Any]]:
    body = {"filter": {"resource": {"id_prefix": [prefix]}}, "limit": limit}
    events: list[dict[str, Any]] = server.post("/events/filter", body)["events"]
    return events


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def rows(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_flow_run_commands_read_the_server(remote: None, forwarded: dict[str, Any]) -> None:
    run_id = forwarded["flow_run_id"]
    listed = rows(invoke("flow-run", "ls", "-o", "json"))
    assert run_id in [row["id"] for row in listed]

    [detail] = rows(invoke("flow-run", "inspect", run_id[:13], "-o", "json"))
    assert detail["run"]["id"] == run_id
    assert [state["name"] for state in detail["states"]] == ["Pending", "Running", "Completed"]

    shown = invoke("flow-run", "inspect", run_id)
    assert shown.exit_code == 0 and "Completed" in shown.stdout and "forwarded" in shown.stdout

    logs = invoke("flow-run", "logs", run_id, "-o", "json")
    assert logs.exit_code == 0, logs.output


def test_task_run_commands_read_the_server(remote: None, forwarded: dict[str, Any]) -> None:
    tasks = rows(invoke("task-run", "ls", "--flow-run", forwarded["flow_run_id"], "-o", "json"))
    assert [task["name"] for task in tasks] == ["step-0", "step-1", "step-2"]
    [detail] = rows(invoke("task-run", "inspect", tasks[0]["id"], "-o", "json"))
    assert detail["run"]["flow_run_id"] == forwarded["flow_run_id"]


def test_events_ls_reads_the_server_across_pages(remote: None, server: ServerProcess) -> None:
    prefix = f"test.paged.{uuid.uuid4().hex}."
    server.post(
        "/events",
        [{"event": "test.paged", "resource": {RESOURCE_ID: f"{prefix}{n}"}} for n in range(60)],
    )
    wait_until(lambda: len(server_events(server, prefix, 50)) == 50)

    found = rows(invoke("events", "ls", "--resource-id-prefix", prefix, "-n", "55", "-o", "json"))
    assert len(found) == 55 and len({row["id"] for row in found}) == 55
    assert {row["event"] for row in found} == {"test.paged"}


def test_events_emit_posts_to_the_server(remote: None, server: ServerProcess) -> None:
    resource = f"test.emit.{uuid.uuid4().hex}"
    emitted = invoke("events", "emit", "test.remote", "--resource-id", resource)
    assert emitted.exit_code == 0, emitted.output
    event_id = emitted.stdout.strip().rsplit(" ", 1)[1]
    stored = wait_until(lambda: server_events(server, resource, 10))
    assert [event["id"] for event in stored] == [event_id]


def test_unknown_id_prefix_on_the_server_is_a_usage_error(remote: None) -> None:
    missing = invoke("flow-run", "inspect", "ffffffff")
    assert missing.exit_code == 2
    assert missing.stderr == "Error: no flow run with id 'ffffffff'\n"


def test_connection_refused_is_one_line_naming_the_url(tmp_path: Path) -> None:
    with temporary_settings(home=tmp_path, api_url="http://127.0.0.1:9/api"):
        for args in (["flow-run", "ls"], ["task-run", "ls"], ["events", "ls"]):
            failed = CliRunner().invoke(cli, args)
            assert failed.exit_code == 1, failed.output
            assert failed.stderr.endswith("connection refused\n"), failed.stderr
            assert failed.stderr.count("\n") == 1
            assert "http://127.0.0.1:9/api/" in failed.stderr


def test_wrong_credentials_over_http_are_one_line_without_the_secret(
    tmp_path: Path, start_server: Any
) -> None:
    secured = start_server("secured", auth="admin:good-secret")
    with temporary_settings(
        home=tmp_path, api_url=secured.api_url, api_auth_string=SecretValue("admin:bad-77")
    ):
        failed = CliRunner().invoke(cli, ["flow-run", "ls"])
    assert failed.exit_code == 1
    assert "credentials rejected (HTTP 401)" in failed.stderr
    assert "bad-77" not in failed.stderr and failed.stderr.count("\n") == 1


def test_task_run_ls_beyond_the_servers_page_limit_pages_through(
    server: ServerProcess, tmp_path: Path
) -> None:
    home = tmp_path / "many"
    [report], _ = finish(run_flow(client_env(home, server.api_url), count=1100), timeout=120)
    server.finished_run(report["flow_run_id"])
    with temporary_settings(home=tmp_path, database_url=None, api_url=server.api_url):
        listed = rows(
            invoke(
                "task-run", "ls", "--flow-run", report["flow_run_id"], "-n", "1500", "-o", "json"
            )
        )
        assert len(listed) == 1100 and len({row["id"] for row in listed}) == 1100
        first = rows(
            invoke(
                "task-run", "ls", "--flow-run", report["flow_run_id"], "-n", "1050", "-o", "json"
            )
        )
        assert [row["id"] for row in first] == [row["id"] for row in listed[:1050]]
