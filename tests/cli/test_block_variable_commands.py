"""``headwater block``, ``headwater variable`` and ``headwater flow-run delete``."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import History, Invoke, assert_one_line_error, json_lines

from headwater.blocks.system import Secret


def test_variables_are_set_listed_read_and_unset(invoke: Invoke, home: Path) -> None:
    assert invoke("variable", "set", "region", "eu").exit_code == 0
    assert invoke("variable", "set", "limits", '{"cpu": 2}', "--tag", "ops").exit_code == 0
    assert invoke("variable", "get", "limits").stdout.strip() == '{"cpu": 2}'
    rows = json_lines(invoke("variable", "ls", "--output", "json").stdout)
    assert rows == [
        {"name": "limits", "value": {"cpu": 2}, "tags": ["ops"]},
        {"name": "region", "value": "eu", "tags": []},
    ]
    assert_one_line_error(invoke("variable", "set", "region", "us"), 2, "already exists")
    assert invoke("variable", "set", "region", "us", "--overwrite").exit_code == 0
    assert json.loads(invoke("variable", "get", "region").stdout) == "us"
    assert invoke("variable", "unset", "region").exit_code == 0
    assert_one_line_error(invoke("variable", "get", "region"), 1, "no variable 'region'")
    assert_one_line_error(invoke("variable", "unset", "region"), 1, "nothing to unset")


def test_blocks_are_listed_inspected_with_secrets_masked_and_deleted(
    invoke: Invoke, home: Path
) -> None:
    Secret(value="hunter2").save("db")
    listed = json_lines(invoke("block", "ls", "--output", "json").stdout)
    assert [(row["block_type"], row["name"]) for row in listed] == [("secret", "db")]
    shown = invoke("block", "inspect", "secret/db")
    assert shown.exit_code == 0 and "********" in shown.stdout
    as_json = invoke("block", "inspect", "secret/db", "--output", "json").stdout
    assert "hunter2" not in as_json and json.loads(as_json)["data"]["value"] == "********"
    assert_one_line_error(
        invoke("block", "inspect", "db"), 1, "expected '<block-type-slug>/<name>'"
    )
    assert invoke("block", "delete", "secret/db").exit_code == 0
    assert_one_line_error(invoke("block", "inspect", "secret/db"), 1, "no block 'secret/db'")


def test_a_flow_run_is_deleted_with_its_task_runs_and_events(
    invoke: Invoke, history: History
) -> None:
    result = invoke("flow-run", "delete", history.tagged)
    assert result.exit_code == 0, result.stderr
    assert "task run(s)" in result.stdout
    listed = [row["id"] for row in json_lines(invoke("flow-run", "ls", "-o", "json").stdout)]
    assert history.tagged not in listed and history.plain in listed
    assert invoke("flow-run", "inspect", history.tagged).exit_code != 0
