"""``headwater task-run``: the task runs of a flow run, inspect."""

from __future__ import annotations

from cli_helpers import History, Invoke, assert_one_line_error, json_lines


def test_ls_of_a_flow_run_lists_its_task_runs_in_start_order(
    invoke: Invoke, history: History
) -> None:
    result = invoke("task-run", "ls", "--flow-run", history.tagged, "-o", "json")
    assert result.exit_code == 0, result.stderr
    rows = json_lines(result.stdout)
    assert [row["name"] for row in rows] == ["double-0", "double-1", "double-2"]
    assert {row["flow_run_id"] for row in rows} == {history.tagged}
    assert {row["state"]["name"] for row in rows} == {"Completed"}

    other = json_lines(invoke("task-run", "ls", "--flow-run", history.plain, "-o", "json").stdout)
    assert len(other) == 2
    assert not {row["id"] for row in rows} & {row["id"] for row in other}


def test_ls_without_a_flow_run_lists_all_with_filters(invoke: Invoke, history: History) -> None:
    rows = json_lines(invoke("task-run", "ls", "-o", "json").stdout)
    assert len(rows) == 5
    assert len(json_lines(invoke("task-run", "ls", "-o", "json", "-n", "2").stdout)) == 2
    assert json_lines(invoke("task-run", "ls", "-o", "json", "--state-type", "FAILED").stdout) == []
    table = invoke("task-run", "ls", "--flow-run", history.plain)
    assert table.exit_code == 0
    assert "double-1" in table.stdout and "Completed" in table.stdout


def test_ls_of_unknown_flow_run(invoke: Invoke, history: History) -> None:
    assert_one_line_error(
        invoke("task-run", "ls", "--flow-run", "deadbeef"), 2, "no flow run with id 'deadbeef'"
    )


def test_inspect_a_task_run(invoke: Invoke, history: History) -> None:
    rows = json_lines(invoke("task-run", "ls", "--flow-run", history.tagged, "-o", "json").stdout)
    task_run_id = rows[0]["id"]
    detail = json_lines(invoke("task-run", "inspect", task_run_id, "-o", "json").stdout)[0]
    assert detail["run"]["id"] == task_run_id
    assert [state["name"] for state in detail["states"]] == ["Pending", "Running", "Completed"]
    result = invoke("task-run", "inspect", task_run_id)
    assert result.exit_code == 0
    assert "State history" in result.stdout and history.tagged in result.stdout
    assert_one_line_error(invoke("task-run", "inspect", history.tagged), 2, "no task run")
