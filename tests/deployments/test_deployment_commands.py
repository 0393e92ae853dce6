"""``headwater deployment`` and ``headwater flow`` from the command line (real processes)."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

from serve_helpers import environment, headwater, query
from served_flows import greet

from headwater.settings import temporary_settings
from headwater.storage import stop_persistence


def _register(home: Path) -> None:
    with temporary_settings(home=home, database_url=None):
        try:
            greet.to_deployment("cli", cron="0 3 * * *", parameters={"name": "ops"}).apply()
        finally:
            stop_persistence()


def test_run_later_with_parameters_from_json_and_flags(tmp_path: Path) -> None:
    _register(tmp_path)
    before = datetime.datetime.now(datetime.timezone.utc)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "headwater",
            "deployment",
            "run",
            "greet/cli",
            "--params",
            "-",
            "-p",
            "times=3",
            "--start-in",
            "10m",
            "--tag",
            "manual",
            "--output",
            "json",
        ],
        input='{"times": 1, "name": "json"}',
        env=environment(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "--param overrides --params for: times" in result.stderr
    run = json.loads(result.stdout)
    assert run["parameters"] == {"name": "json", "times": 3}
    assert run["tags"] == ["manual"]
    due = datetime.datetime.fromisoformat(run["expected_start_time"].replace("Z", "+00:00"))
    assert datetime.timedelta(minutes=9) < due - before < datetime.timedelta(minutes=11)
    again = headwater(tmp_path, "deployment", "run", "greet/cli", "--idempotency-key", "k1")
    same = headwater(tmp_path, "deployment", "run", "greet/cli", "--idempotency-key", "k1")
    assert "Created flow run" in again.stdout and "same idempotency key" in same.stdout
    assert query(tmp_path, "SELECT count(*) FROM flow_runs WHERE idempotency_key = 'k1'") == [(1,)]


def test_bad_requests_say_what_was_wrong_and_store_nothing(tmp_path: Path) -> None:
    _register(tmp_path)
    cases = [
        (["--start-in", "soonish"], "expected a duration like"),
        (["--start-in", "5m", "--start-at", "2030-01-01T00:00"], "cannot be used together"),
        (["--start-at", "next tuesday"], "expected an ISO time"),
        (["-p", "colour=red"], "has no parameter(s) colour"),
        (["-p", "novalue"], "expected key=value"),
        (["--params", "[1, 2]"], "expected a JSON object"),
        (["--flow-run-name", "x-{missing}"], "cannot fill it from the parameters"),
    ]
    for extra, fragment in cases:
        result = headwater(tmp_path, "deployment", "run", "greet/cli", *extra)
        assert result.returncode in (1, 2), (extra, result.stdout)
        assert fragment in result.stderr, (extra, result.stderr)
        assert "Traceback" not in result.stderr
    assert query(tmp_path, "SELECT count(*) FROM flow_runs") == [(0,)]


def test_inspect_pause_resume_delete(tmp_path: Path) -> None:
    _register(tmp_path)
    shown = headwater(tmp_path, "deployment", "inspect", "greet/cli", "--output", "json")
    data = json.loads(shown.stdout)
    assert data["full_name"] == "greet/cli" and data["parameters"] == {"name": "ops"}
    assert data["schedules"][0]["schedule"]["cron"] == "0 3 * * *"
    assert "Paused greet/cli" in headwater(tmp_path, "deployment", "pause", "greet/cli").stdout
    assert query(tmp_path, "SELECT paused FROM deployments") == [(1,)]
    assert "Resumed" in headwater(tmp_path, "deployment", "resume", data["id"]).stdout
    assert query(tmp_path, "SELECT paused FROM deployments") == [(0,)]
    assert "Deleted greet/cli" in headwater(tmp_path, "deployment", "delete", "greet/cli").stdout
    gone = headwater(tmp_path, "deployment", "inspect", "greet/cli")
    assert gone.returncode == 2 and "no deployment 'greet/cli'" in gone.stderr
    listed = headwater(tmp_path, "deployment", "ls")
    assert "No deployments." in listed.stdout
