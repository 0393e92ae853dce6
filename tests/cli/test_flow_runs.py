"""``headwater flow-run``: ls filters, inspect, logs, id resolution, errors."""

from __future__ import annotations

from cli_helpers import History, Invoke, assert_one_line_error, json_lines


def ids_of(invoke: Invoke, *args: str) -> list[str]:
    result = invoke("flow-run", "ls", "--output", "json", *args)
    assert result.exit_code == 0, result.stderr
    return [row["id"] for row in json_lines(result.stdout)]


def test_ls_lists_every_run_newest_first(invoke: Invoke, history: History) -> None:
    assert ids_of(invoke) == [history.failed, history.plain, history.tagged]


def test_ls_filters_by_state_type_state_name_flow_tag_and_limit(
    invoke: Invoke, history: History
) -> None:
    assert ids_of(invoke, "--state-type", "failed") == [history.failed]
    assert ids_of(invoke, "--state", "completed") == [history.plain, history.tagged]
    assert ids_of(invoke, "--state", "Failed", "--state", "Completed") == [
        history.failed,
        history.plain,
        history.tagged,
    ]
    assert ids_of(invoke, "--flow", "cli-etl") == [history.plain, history.tagged]
    assert ids_of(invoke, "--tag", "nightly") == [history.tagged]
    assert ids_of(invoke, "--tag", "nightly", "--state-type", "FAILED") == []
    assert ids_of(invoke, "--limit", "1") == [history.failed]
    assert ids_of(invoke, "--since", "1h") == [history.failed, history.plain, history.tagged]
    assert ids_of(invoke, "--until", "1h") == []


def test_ls_json_has_stable_fields_in_utc(invoke: Invoke, history: History) -> None:
    rows = json_lines(invoke("flow-run", "ls", "-o", "json", "--tag", "nightly").stdout)
    assert len(rows) == 1
    row = rows[0]
    assert {"id", "name", "flow_name", "state", "run_count", "start_time", "tags"} <= set(row)
    assert row["flow_name"] == "cli-etl"
    assert row["parameters"] == {"count": 3}
    assert row["tags"] == ["nightly"]
    assert row["state"]["type"] == "COMPLETED"
    assert row["start_time"].endswith("Z")


def test_ls_table_shows_runs(invoke: Invoke, history: History) -> None:
    result = invoke("flow-run", "ls")
    assert result.exit_code == 0
    for run_id in (history.tagged, history.plain, history.failed):
        assert run_id in result.stdout
    assert "cli-broken" in result.stdout
    assert "Failed" in result.stdout
    assert "nightly" in result.stdout


def test_inspect_shows_state_history(invoke: Invoke, history: History) -> None:
    result = invoke("flow-run", "inspect", history.failed)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "State history" in out
    assert out.index("Pending") < out.index("Running") < out.rindex("Failed")
    assert "source is gone" in out

    detail = json_lines(invoke("flow-run", "inspect", history.tagged, "-o", "json").stdout)[0]
    assert detail["run"]["id"] == history.tagged
    assert [state["name"] for state in detail["states"]] == ["Pending", "Running", "Completed"]


def test_inspect_accepts_a_unique_prefix_or_resource_id(invoke: Invoke, history: History) -> None:
    # ids made in one process share their leading time digits: the tail tells them apart
    prefix = history.plain[:-2]
    detail = json_lines(invoke("flow-run", "inspect", prefix, "-o", "json").stdout)[0]
    assert detail["run"]["id"] == history.plain
    resource = f"headwater.flow-run.{history.plain.upper()}"
    detail = json_lines(invoke("flow-run", "inspect", resource, "-o", "json").stdout)[0]
    assert detail["run"]["id"] == history.plain


def test_inspect_unknown_or_ambiguous_id_is_a_usage_error(invoke: Invoke, history: History) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    assert_one_line_error(
        invoke("flow-run", "inspect", missing), 2, f"no flow run with id '{missing}'"
    )
    assert_one_line_error(invoke("flow-run", "inspect", "not-an-id"), 2, "no flow run")
    shared = history.tagged[:8]  # the three runs share their leading time digits
    assert_one_line_error(invoke("flow-run", "inspect", shared), 2, "matches several flow runs")


def test_logs_prints_the_runs_logs(invoke: Invoke, history: History) -> None:
    result = invoke("flow-run", "logs", history.tagged)
    assert result.exit_code == 0, result.stderr
    assert "processing 3 items" in result.stdout
    assert "processing 2 items" not in result.stdout  # the other run's

    entries = json_lines(invoke("flow-run", "logs", history.failed, "-o", "json").stdout)
    assert entries and all(entry["flow_run_id"] == history.failed for entry in entries)
    assert any("source is gone" in entry["message"] for entry in entries)

    warnings = json_lines(
        invoke("flow-run", "logs", history.failed, "--level", "warning", "-o", "json").stdout
    )
    assert [entry["message"] for entry in warnings] == ["the source looks unwell"]
    assert warnings[0]["level"] == 30


def test_logs_of_unknown_run(invoke: Invoke, home: object) -> None:
    assert_one_line_error(
        invoke("flow-run", "logs", "0123abcd"), 2, "no flow run with id '0123abcd'"
    )
