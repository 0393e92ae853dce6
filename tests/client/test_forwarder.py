"""Flows in other processes forward their events to a real server, through any outage."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from client_helpers import (
    AUTH_STRING,
    ServerProcess,
    client_env,
    finish,
    free_port,
    next_report,
    outbox_rows,
    run_flow,
    server_event_ids,
    wait_until,
)


def assert_stored_in_order(server: ServerProcess, published: list[str]) -> None:
    """The server stored every published event once, in the order it was published."""
    wanted = set(published)

    def mine() -> list[str]:
        return [event_id for event_id in server_event_ids(server) if event_id in wanted]

    wait_until(lambda: len(mine()) >= len(published))
    assert mine() == published


def test_a_flow_in_another_process_is_stored_by_the_server(
    server: ServerProcess, tmp_path: Path
) -> None:
    [report], _ = finish(run_flow(client_env(tmp_path, server.api_url), count=3))

    assert report["state"] == "COMPLETED"
    assert report["stats"]["sent"] == len(report["published"]) == 3 + 3 * 3
    assert report["stats"]["stored"] == 0
    run = server.finished_run(report["flow_run_id"])
    assert run["state"]["name"] == "Completed"
    assert [state["name"] for state in run["states"]] == ["Pending", "Running", "Completed"]
    tasks = server.task_runs(report["flow_run_id"])
    assert sorted(task["name"] for task in tasks) == ["step-0", "step-1", "step-2"]
    assert {task["state"]["name"] for task in tasks} == {"Completed"}
    assert_stored_in_order(server, report["published"])
    # Forwarding replaces local persistence: the client wrote no history of its own.
    assert not (tmp_path / "headwater.db").exists()
    assert outbox_rows(tmp_path) == []


def test_server_down_at_start_then_the_outbox_drains_in_order(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server(start=False, port=free_port())
    flow = run_flow(client_env(tmp_path / "client", server.api_url), mode="wait-live", count=4)
    try:
        done = next_report(flow)
        # The flow completed with the server down: every event went to the outbox.
        assert done["state"] == "COMPLETED"
        assert done["stats"]["sent"] == 0
        assert done["stats"]["stored"] == len(done["published"]) == 3 + 4 * 3
        assert len(outbox_rows(tmp_path / "client")) == len(done["published"])

        server.start()
        [drained], _ = finish(flow)
    finally:
        if flow.poll() is None:
            flow.kill()
            flow.communicate()
    assert drained["live"]
    assert drained["stats"]["drained"] == len(done["published"])
    assert_stored_in_order(server, done["published"])
    assert outbox_rows(tmp_path / "client") == []
    assert {task["state"]["name"] for task in server.task_runs(done["flow_run_id"])} == {
        "Completed"
    }


def test_server_restart_mid_flow_loses_nothing(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server()
    flow = run_flow(client_env(tmp_path / "client", server.api_url), "wait-live", 8, 0.4)
    try:
        # Restart once the run is under way (its first task finished on the server).
        def first_task_done() -> bool:
            runs = server.post("/task_runs/filter", {"state_type": ["COMPLETED"]})
            return bool(runs)

        wait_until(first_task_done)
        server.stop()
        server.start()
        reports, _ = finish(flow)
    finally:
        if flow.poll() is None:
            flow.kill()
            flow.communicate()
    done, live = reports
    assert done["state"] == "COMPLETED" and live["live"]
    assert live["stats"]["connections"] >= 2
    assert_stored_in_order(server, done["published"])
    tasks = server.task_runs(done["flow_run_id"])
    assert len(tasks) == 8 and {task["state"]["name"] for task in tasks} == {"Completed"}
    assert server.finished_run(done["flow_run_id"])["state"]["name"] == "Completed"


def test_kill_9_of_the_server_mid_flow_loses_nothing_it_confirmed(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server()
    flow = run_flow(client_env(tmp_path / "client", server.api_url), "wait-live", 40, 0.05)
    try:

        def some_tasks_done() -> bool:
            return len(server.post("/task_runs/filter", {"state_type": ["COMPLETED"]})) >= 5

        wait_until(some_tasks_done)
        server.kill()  # events received but not yet committed die with it
        server.start()
        reports, _ = finish(flow)
    finally:
        if flow.poll() is None:
            flow.kill()
            flow.communicate()
    done, live = reports
    assert done["state"] == "COMPLETED" and live["live"]
    # what the server confirmed before dying was committed; the rest was sent again
    assert_stored_in_order(server, done["published"])
    tasks = server.task_runs(done["flow_run_id"])
    assert len(tasks) == 40 and {task["state"]["name"] for task in tasks} == {"Completed"}
    assert server.finished_run(done["flow_run_id"])["state"]["name"] == "Completed"


def test_rejected_credentials_keep_events_until_a_process_is_accepted(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server(auth=AUTH_STRING)
    home = tmp_path / "client"
    wrong = "flow-user:wrong-pass-8832"
    [rejected], stderr = finish(
        run_flow(client_env(home, server.api_url, HEADWATER_API_AUTH_STRING=wrong), count=2)
    )

    # The flow ran to completion; its events wait in the outbox, none lost.
    assert rejected["state"] == "COMPLETED"
    assert rejected["stats"]["sent"] == 0
    assert len(outbox_rows(home)) == len(rejected["published"]) == 3 + 2 * 3
    # One clear error naming the server, never the secret.
    errors = [line for line in stderr.splitlines() if "credentials rejected" in line]
    assert len(errors) == 1, stderr
    assert server.api_url.replace("http", "ws") + "/events/in" in errors[0]
    assert "1008" in errors[0] and "HEADWATER_API_AUTH_STRING" in errors[0]
    assert "wrong-pass" not in stderr

    # The next process with the right credentials sends what the first one left.
    [accepted], _ = finish(
        run_flow(client_env(home, server.api_url, HEADWATER_API_AUTH_STRING=AUTH_STRING), count=1)
    )
    assert accepted["stats"]["drained"] == len(rejected["published"])
    assert outbox_rows(home) == []
    assert_stored_in_order(server, rejected["published"])
    assert server.finished_run(rejected["flow_run_id"])["state"]["name"] == "Completed"


EXIT_SOON = """
import sys, time
from pathlib import Path
from headwater import flow, task

@task
def step(i: int) -> int:
    return i

@flow
def offline(n: int) -> int:
    return sum(step(i) for i in range(n))

offline(int(sys.argv[1]))
go = Path(sys.argv[2])
Path(str(go) + ".done").write_text("ran")
while not go.exists():
    time.sleep(0.01)
# exits at once: the outbox must reach the server on the way out
"""


def test_a_client_exiting_just_after_the_server_returns_drains_its_outbox(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    import subprocess
    import sys

    server = start_server(start=False)
    go = tmp_path / "go"
    home = tmp_path / "client"
    client = subprocess.Popen(
        [sys.executable, "-c", EXIT_SOON, "300", str(go)],
        # a long reconnect backoff: exiting must not wait for it
        env={**client_env(home, server.api_url), "HEADWATER_API_RECONNECT_MAX_DELAY": "30"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: Path(str(go) + ".done").exists())
        assert len(outbox_rows(home)) >= 900  # the whole run waits in the outbox
        server.start()
        go.write_text("exit now")
        _, stderr = client.communicate(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
            client.communicate()
    assert client.returncode == 0, stderr
    assert outbox_rows(home) == []
    runs = server.post("/flow_runs/filter", {"flow_name": ["offline"]})
    assert [run["state"]["name"] for run in runs] == ["Completed"]
    assert len(server.task_runs(runs[0]["id"])) == 300
