"""``headwater db prune``: removes what is older than the period, prints the counts."""

from __future__ import annotations

import time
from pathlib import Path

from cli_helpers import History, Invoke, assert_one_line_error, json_lines


def counts(invoke: Invoke, *args: str) -> dict[str, int]:
    result = invoke("db", "prune", "-o", "json", *args)
    assert result.exit_code == 0, result.stderr
    return json_lines(result.stdout)[0]


def test_prune_removes_only_what_is_older(invoke: Invoke, history: History) -> None:
    emitted = invoke(
        "events", "emit", "legacy.import", "--resource-id", "legacy.1", "--occurred", "20d"
    )
    assert emitted.exit_code == 0, emitted.stderr

    removed = counts(invoke, "--older-than", "7d")
    assert removed["events"] == 1 and removed["total"] == 1
    assert json_lines(invoke("events", "ls", "-o", "json", "--event", "legacy.import").stdout) == []
    assert len(json_lines(invoke("flow-run", "ls", "-o", "json").stdout)) == 3

    time.sleep(0.01)  # every run is now older than 5 ms
    removed = counts(invoke, "--older-than", "0.005s")
    assert removed["flow_runs"] == 3
    assert removed["task_runs"] == 5
    assert removed["events"] == 9 + 15
    assert removed["event_resources"] > 0 and removed["logs"] > 0
    assert removed["total"] == sum(value for key, value in removed.items() if key != "total")
    assert json_lines(invoke("flow-run", "ls", "-o", "json").stdout) == []
    assert_one_line_error(invoke("flow-run", "inspect", history.failed), 2, "no flow run")


def test_prune_prints_a_table_or_nothing_to_do(invoke: Invoke, history: History) -> None:
    nothing = invoke("db", "prune", "--older-than", "7d")
    assert nothing.exit_code == 0
    assert "Nothing older than 7d" in nothing.stdout
    time.sleep(0.01)
    table = invoke("db", "prune", "--older-than", "0.005s")
    assert table.exit_code == 0
    assert "flow_runs" in table.stdout and "total" in table.stdout


def test_prune_bad_duration_is_one_line_exit_2(invoke: Invoke, home: Path) -> None:
    assert_one_line_error(invoke("db", "prune", "--older-than", "7x"), 2, "--older-than", "'7x'")
    assert_one_line_error(invoke("db", "prune", "--older-than", "-1d"), 2, "--older-than")
    assert_one_line_error(invoke("db", "prune"), 2, "--older-than")
