"""The installed ``headwater`` console script, run for real against a SQLite file in tmp_path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import HEADWATER, subprocess_env

pytestmark = pytest.mark.skipif(
    not HEADWATER.exists(), reason="the headwater console script is not installed"
)


def run(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HEADWATER), *args],
        env=subprocess_env(home, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def json_rows(process: subprocess.CompletedProcess[str]) -> list[dict]:
    assert process.returncode == 0, process.stderr
    return [json.loads(line) for line in process.stdout.splitlines()]


def test_demo_on_a_fresh_home_then_read_it_back(tmp_path: Path) -> None:
    home = tmp_path / "fresh"
    demo = run(home, "demo")
    assert demo.returncode == 0, demo.stderr
    assert "headwater.flow-run.Completed" in demo.stdout
    assert (home / "headwater.db").exists()

    runs = json_rows(run(home, "flow-run", "ls", "--output", "json"))
    assert [(row["flow_name"], row["state"]["type"]) for row in runs] == [
        ("nightly-etl", "COMPLETED")
    ]
    tasks = json_rows(run(home, "task-run", "ls", "--flow-run", runs[0]["id"], "-o", "json"))
    assert sorted((row["name"], row["run_count"]) for row in tasks) == [
        ("fetch-0", 1),
        ("fetch-1", 2),
        ("fetch-2", 3),
        ("fetch-3", 1),
        ("summarise-0", 1),
    ]


def test_python_m_headwater_demo_still_works(tmp_path: Path) -> None:
    process = subprocess.run(
        [sys.executable, "-m", "headwater.demo"],
        env=subprocess_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 0, process.stderr
    assert "headwater.flow-run.Completed" in process.stdout
    assert "fetch-2" in process.stdout


def test_emit_then_find_then_prune(tmp_path: Path) -> None:
    emitted = run(
        tmp_path,
        "events",
        "emit",
        "billing.invoice.sent",
        "--resource-id",
        "billing.invoice.9",
        "--payload",
        '{"amount": 3}',
        "--occurred",
        "10d",
    )
    assert emitted.returncode == 0, emitted.stderr
    event_id = emitted.stdout.strip().rsplit(" ", 1)[1]
    assert emitted.stdout.startswith("Successfully emitted event 'billing.invoice.sent' with ID")

    found = json_rows(
        run(tmp_path, "events", "ls", "-o", "json", "--resource-id-prefix", "billing.")
    )
    assert [row["id"] for row in found] == [event_id]

    pruned = run(tmp_path, "db", "prune", "--older-than", "7d")
    assert pruned.returncode == 0, pruned.stderr
    assert "events" in pruned.stdout and "Removed 1 row older than 7d" in pruned.stdout
    assert json_rows(run(tmp_path, "events", "ls", "-o", "json")) == []


def test_config_view_masks_the_api_key(tmp_path: Path) -> None:
    process = run(tmp_path, "config", "view", HEADWATER_API_KEY="hw-secret-0451")
    assert process.returncode == 0, process.stderr
    assert "hw-secret-0451" not in process.stdout
    assert "HEADWATER_API_KEY" in process.stdout and "********" in process.stdout


def test_failures_are_one_line_with_exit_codes(tmp_path: Path) -> None:
    missing = run(tmp_path, "flow-run", "inspect", "0123")
    assert missing.returncode == 2
    assert missing.stderr == "Error: no flow run with id '0123'\n"

    bad_json = run(tmp_path, "events", "emit", "x", "--resource-id", "r", "--related", "[{")
    assert bad_json.returncode == 2
    assert bad_json.stderr.count("\n") == 1 and "--related" in bad_json.stderr

    bad_setting = run(tmp_path, "flow-run", "ls", HEADWATER_LOGGING_LEVEL="loud")
    assert bad_setting.returncode == 1
    assert bad_setting.stderr.count("\n") == 1 and "HEADWATER_LOGGING_LEVEL" in bad_setting.stderr

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "headwater.db").write_text("not sqlite " * 200)
    unusable = run(broken, "flow-run", "ls")
    assert unusable.returncode == 1
    assert unusable.stderr.count("\n") == 1
    assert str(broken / "headwater.db") in unusable.stderr
    assert "Traceback" not in unusable.stderr


def test_help_is_fast_to_import() -> None:
    probe = (
        "import sys, headwater.cli.app; "
        "print(sorted(m for m in ('rich', 'aiosqlite', 'headwater.storage') if m in sys.modules))"
    )
    process = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert process.stdout.strip() == "[]", process.stderr
    helped = run(Path("/nonexistent-home"), "--help")
    assert helped.returncode == 0 and "flow-run" in helped.stdout
    module = subprocess.run(
        [sys.executable, "-m", "headwater", "--version"], capture_output=True, text=True
    )
    assert module.returncode == 0 and "headwater" in module.stdout
