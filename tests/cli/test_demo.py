"""``headwater demo``: live events, then the runs as stored in the database."""

from __future__ import annotations

from pathlib import Path

from cli_helpers import Invoke, json_lines


def test_demo_prints_events_live_then_the_stored_runs(invoke: Invoke, home: Path) -> None:
    result = invoke("demo")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    events_part, _, table_part = out.partition("\n\n ")
    for name in (
        "headwater.flow-run.Running",
        "headwater.task-run.AwaitingRetry",
        "headwater.task-run.Retrying",
        "headwater.task-run.Failed",
        "headwater.flow-run.Completed",
    ):
        assert name in events_part, name
    # events are printed in the order they happened
    assert events_part.index("headwater.flow-run.Pending") < events_part.index(
        "headwater.flow-run.Completed"
    )

    runs = json_lines(invoke("flow-run", "ls", "-o", "json").stdout)
    assert [(run["flow_name"], run["state"]["name"]) for run in runs] == [
        ("nightly-etl", "Completed")
    ]
    tasks = {
        row["name"]: row
        for row in json_lines(
            invoke("task-run", "ls", "--flow-run", runs[0]["id"], "-o", "json").stdout
        )
    }
    assert tasks["fetch-2"]["state"]["name"] == "Failed"
    assert tasks["fetch-2"]["run_count"] == 3
    assert tasks["fetch-1"]["run_count"] == 2
    # the table at the end is those stored rows
    for name in tasks:
        assert name in table_part
    assert runs[0]["name"] in table_part
    assert f"headwater flow-run inspect {runs[0]['id']}" in out
