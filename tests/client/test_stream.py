"""``headwater events stream``: events from another process, via the server or the local file."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

from click.testing import CliRunner, Result
from client_helpers import (
    HEADWATER,
    TIMEOUT,
    ServerProcess,
    base_env,
    client_env,
)

from headwater.cli.app import cli
from headwater.events import emit_event, get_bus
from headwater.events.schema import RESOURCE_ID
from headwater.settings import temporary_settings
from headwater.storage import ensure_persistence, stop_persistence


def headwater(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HEADWATER), *args], env=env, capture_output=True, text=True, timeout=TIMEOUT
    )


def stream(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(HEADWATER), "events", "stream", "--output", "json", "--run-once", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def emit_and_receive(env: dict[str, str]) -> None:
    resource = f"test.stream.{uuid.uuid4().hex}"
    watcher = stream(env, "--resource-id", resource)
    try:
        assert watcher.stderr is not None
        assert watcher.stderr.readline().startswith("Subscribing to event stream")
        emitted = headwater(
            env, "events", "emit", "test.streamed", "--resource-id", resource, "--payload", "{}"
        )
        assert emitted.returncode == 0, emitted.stderr
        event_id = emitted.stdout.strip().rsplit(" ", 1)[1]
        stdout, stderr = watcher.communicate(timeout=TIMEOUT)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.communicate()
    assert watcher.returncode == 0, stderr
    [line] = stdout.splitlines()
    event = json.loads(line)
    assert event["id"] == event_id
    assert event["event"] == "test.streamed"
    assert event["resource"] == {"headwater.resource.id": resource}
    assert list(event) == ["occurred", "event", "resource", "related", "payload", "id", "follows"]


def test_stream_receives_an_event_emitted_by_another_process_via_the_server(
    server: ServerProcess, tmp_path: Path
) -> None:
    emit_and_receive(client_env(tmp_path, server.api_url))


def test_stream_tails_the_local_database_without_a_server(tmp_path: Path) -> None:
    emit_and_receive(base_env(tmp_path))


def test_stream_without_a_reachable_server_fails_in_one_line(tmp_path: Path) -> None:
    env = client_env(tmp_path, "http://127.0.0.1:9/api")
    failed = headwater(env, "events", "stream")
    assert failed.returncode == 1
    errors = [line for line in failed.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [
        "Error: headwater server ws://127.0.0.1:9/api/events/out: connection refused"
    ], failed.stderr


def test_stream_text_lines_name_the_event_and_resource(
    server: ServerProcess, tmp_path: Path
) -> None:
    env = client_env(tmp_path, server.api_url)
    resource = f"test.text.{uuid.uuid4().hex}"
    emitted = headwater(env, "events", "emit", "test.text", "--resource-id", resource)
    assert emitted.returncode == 0, emitted.stderr
    shown = headwater(
        env, "events", "stream", "--run-once", "--resource-id", resource, "--since", "5m"
    )
    assert shown.returncode == 0, shown.stderr
    assert "test.text" in shown.stdout and resource in shown.stdout


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["events", "stream", "--run-once", *args])


def test_stream_command_in_this_process_reads_the_server(
    server: ServerProcess, tmp_path: Path
) -> None:
    resource = f"test.inproc.{uuid.uuid4().hex}"
    server.post("/events", [{"event": "test.inproc", "resource": {RESOURCE_ID: resource}}])
    query = json.dumps({"resource": {"id": [resource]}})
    with temporary_settings(home=tmp_path, api_url=server.api_url):
        shown = invoke("--filter", query, "-o", "json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["resource"] == {RESOURCE_ID: resource}


def test_stream_command_in_this_process_tails_the_local_file(tmp_path: Path) -> None:
    resource = f"test.local.{uuid.uuid4().hex}"
    with temporary_settings(home=tmp_path, database_url=None):
        ensure_persistence()
        try:
            emit_event("headwater.flow-run.Completed", resource={RESOURCE_ID: resource})
            assert get_bus().flush(timeout=10)
            shown = invoke("--resource-id", resource)
        finally:
            stop_persistence()
    assert shown.exit_code == 0, shown.output
    assert "headwater.flow-run.Completed" in shown.stdout and resource in shown.stdout


def test_stream_takes_a_filter_or_options_not_both(tmp_path: Path) -> None:
    with temporary_settings(home=tmp_path):
        both = invoke("--filter", "{}", "--event", "x")
        bad = invoke("--filter", '{"occurred": 3}')
    assert both.exit_code == 2 and "either --filter" in both.stderr
    assert bad.exit_code == 2 and "not an EventFilter" in bad.stderr
