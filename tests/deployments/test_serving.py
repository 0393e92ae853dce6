"""serve() end to end: real serve processes, real run subprocesses, one SQLite file."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from serve_helpers import (
    ServeProcess,
    headwater,
    process_alive,
    query,
    run_state,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)


def _completed(home: Path, deployment: str) -> list[tuple]:
    return query(
        home,
        "SELECT r.expected_start_time, r.start_time, r.state_name FROM flow_runs r"
        " JOIN deployments d ON d.id = r.deployment_id"
        " WHERE d.flow_name || '/' || d.name = ? AND r.state_type = 'COMPLETED'"
        " ORDER BY r.expected_start_time",
        deployment,
    )


def test_a_served_interval_deployment_runs_on_time_and_a_restart_makes_no_duplicates(
    tmp_path: Path,
) -> None:
    body = 'serve(greet.to_deployment("every", interval=1))\n'
    with ServeProcess(tmp_path, body) as serving:
        serving.wait_ready()
        wait_until(lambda: len(_completed(tmp_path, "greet/every")) >= 3, 30, "three runs")
        output = serving.stop()
    assert serving.process.returncode == 0, output  # SIGTERM: serve returns, exit is clean
    assert "greet/every" in output
    # stopping paused it (Prefect's pause_on_shutdown) and removed its waiting runs
    assert query(tmp_path, "SELECT paused FROM deployments") == [(1,)]
    assert query(tmp_path, "SELECT count(*) FROM flow_runs WHERE state_name = 'Scheduled'") == [
        (0,)
    ]
    with ServeProcess(tmp_path, body) as again:
        again.wait_ready()
        before = len(_completed(tmp_path, "greet/every"))
        wait_until(lambda: len(_completed(tmp_path, "greet/every")) >= before + 2, 30, "more runs")
        again.stop()
    runs = _completed(tmp_path, "greet/every")
    expected = [row[0] for row in runs]
    assert len(expected) == len(set(expected)), "a scheduled time ran twice"
    for due, started, _ in runs:
        lag = (_time(started) - _time(due)).total_seconds()
        assert 0 <= lag < 10, f"run due {due} started {started}"
    facts = [p.read_text() for p in (tmp_path / "markers").iterdir()]
    assert all(fact.startswith("greet/every|") for fact in facts)  # runtime.deployment
    deployment_id = query(tmp_path, "SELECT id FROM deployments")[0][0]
    assert all(fact.split("|")[1] == deployment_id for fact in facts)


def _time(text: str):
    import datetime

    return datetime.datetime.fromisoformat(text)


def test_a_run_requested_from_the_cli_is_picked_up_and_can_be_watched(tmp_path: Path) -> None:
    with ServeProcess(tmp_path, 'serve(greet.to_deployment("manual"))\n') as serving:
        serving.wait_ready()
        result = headwater(
            tmp_path,
            "deployment",
            "run",
            "greet/manual",
            "-p",
            "name=cli",
            "-p",
            "times=2",
            "--watch",
            "--watch-timeout",
            "60",
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "ended Completed" in result.stdout
        bad = headwater(tmp_path, "deployment", "run", "greet/manual", "-p", "times=lots")
        assert bad.returncode == 2
        assert "'times': 'lots' is not of type 'integer'" in bad.stderr
        missing = headwater(tmp_path, "deployment", "run", "greet/nothing")
        assert missing.returncode == 2 and "no deployment 'greet/nothing'" in missing.stderr
    facts = [p.read_text() for p in (tmp_path / "markers").iterdir()]
    assert len(facts) == 1 and facts[0].endswith("|cli|2")
    listing = headwater(tmp_path, "deployment", "ls", "--output", "json")
    assert json.loads(listing.stdout.splitlines()[0])["full_name"] == "greet/manual"
    flows = headwater(tmp_path, "flow", "ls", "--output", "json")
    assert json.loads(flows.stdout.splitlines()[0])["name"] == "greet"


def _start_sleepy(home: Path, *args: str) -> tuple[str, int]:
    """Request a run of sleepy/sleepy; its id and the pid of its process once it runs."""
    started = headwater(home, "deployment", "run", "sleepy/sleepy", "--output", "json", *args)
    run_id = json.loads(started.stdout)["id"]
    marker = wait_until(lambda: list((home / "markers").glob("sleepy.*")), 30, "its process")
    pid = int(marker[0].read_text())
    marker[0].unlink()
    return run_id, pid


def test_cancelling_a_running_run_stops_its_process_and_records_cancelled(
    tmp_path: Path,
) -> None:
    with ServeProcess(tmp_path, 'serve(sleepy.to_deployment("sleepy"))\n') as serving:
        serving.wait_ready()
        run_id, pid = _start_sleepy(tmp_path)
        cancel = headwater(tmp_path, "flow-run", "cancel", run_id)
        assert cancel.returncode == 0, cancel.stderr
        wait_until(lambda: run_state(tmp_path, run_id)[0] == "CANCELLED", 30, "Cancelled")
        wait_until(lambda: not process_alive(pid), 10, "the process to be gone")
        # the run's own process ended it: its on_cancellation hook ran there
        hook = tmp_path / "markers" / f"cancelled.{pid}"
        assert hook.read_text() == "Cancelled from the command line"
        again = headwater(tmp_path, "flow-run", "cancel", run_id)
        assert again.returncode == 1 and "already ended" in again.stderr
    states = [
        name
        for (name,) in query(
            tmp_path,
            "SELECT event FROM events WHERE resource_id = ? ORDER BY occurred",
            f"headwater.flow-run.{run_id}",
        )
    ]
    assert states[-2:] == ["headwater.flow-run.Cancelling", "headwater.flow-run.Cancelled"]


def test_a_run_whose_process_is_killed_is_recorded_crashed_with_the_signal(
    tmp_path: Path,
) -> None:
    with ServeProcess(tmp_path, 'serve(sleepy.to_deployment("sleepy"))\n') as serving:
        serving.wait_ready()
        run_id, pid = _start_sleepy(tmp_path)
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: run_state(tmp_path, run_id)[0] == "CRASHED", 30, "Crashed")
    message = run_state(tmp_path, run_id)[2]
    assert message is not None and "killed by SIGKILL" in message


def test_serve_limit_holds_runs_back_until_a_slot_frees(tmp_path: Path) -> None:
    body = 'serve(sleepy.to_deployment("sleepy", parameters={"seconds": 1.5}), limit=1)\n'
    with ServeProcess(tmp_path, body) as serving:
        serving.wait_ready()
        for _ in range(2):
            headwater(tmp_path, "deployment", "run", "sleepy/sleepy")
        wait_until(
            lambda: (
                query(tmp_path, "SELECT count(*) FROM flow_runs WHERE state_type = 'RUNNING'")
                == [(1,)]
            ),
            30,
            "one run running",
        )
        assert query(tmp_path, "SELECT count(*) FROM flow_runs WHERE state_type = 'SCHEDULED'") == [
            (1,)
        ]
        wait_until(
            lambda: (
                query(tmp_path, "SELECT count(*) FROM flow_runs WHERE state_type = 'COMPLETED'")
                == [(2,)]
            ),
            30,
            "both runs completed",
        )


def test_run_deployment_inside_a_flow_waits_for_the_child_and_links_it(tmp_path: Path) -> None:
    body = 'serve(greet.to_deployment("child"), parent_calls_child.to_deployment("parent"))\n'
    with ServeProcess(tmp_path, body) as serving:
        serving.wait_ready(2)
        result = headwater(
            tmp_path,
            "deployment",
            "run",
            "parent-calls-child/parent",
            "--watch",
            "--watch-timeout",
            "60",
        )
        assert result.returncode == 0, result.stdout + result.stderr
    (parent_id,) = query(
        tmp_path, "SELECT id FROM flow_runs WHERE flow_name = 'parent-calls-child'"
    )[0]
    child = query(
        tmp_path,
        "SELECT state_name, parent_flow_run_id, parent_task_run_id, parameters FROM flow_runs"
        " WHERE flow_name = 'greet'",
    )
    assert len(child) == 1
    state, parent, task_run, parameters = child[0]
    assert state == "Completed" and parent == parent_id
    assert json.loads(parameters) == {"name": "from-parent", "times": 1}  # defaults bound
    placeholder = query(
        tmp_path, "SELECT name, state_name, flow_run_id FROM task_runs WHERE id = ?", task_run
    )
    assert placeholder[0][0].startswith("greet/child-")
    assert placeholder[0][1:] == ("Completed", parent_id)


def test_a_failed_run_triggers_an_automation_that_runs_another_deployment(
    tmp_path: Path,
) -> None:
    body = 'serve(greet.to_deployment("recover"), broken.to_deployment("broken"))\n'
    with ServeProcess(tmp_path, body) as serving:
        serving.wait_ready(2)
        (deployment_id,) = query(tmp_path, "SELECT id FROM deployments WHERE name = 'recover'")[0]
        automation = tmp_path / "recover.yaml"
        automation.write_text(
            "name: recover-on-failure\n"
            "trigger:\n"
            "  expect: [headwater.flow-run.Failed]\n"
            "  match_related: {headwater.resource.role: flow, headwater.resource.name: broken}\n"
            "actions:\n"
            "  - type: run-deployment\n"
            f"    deployment_id: {deployment_id}\n"
            "    parameters: {name: '{{ event.resource[\"headwater.resource.name\"] }}',"
            " times: '{{ 2 + 1 }}'}\n"
        )
        created = headwater(tmp_path, "automation", "create", "--file", str(automation))
        assert created.returncode == 0, created.stderr
        ran = headwater(tmp_path, "deployment", "run", "broken/broken", "--watch")
        assert ran.returncode == 1  # it failed, as it should
        wait_until(lambda: _completed(tmp_path, "greet/recover"), 30, "the recovery run")
    (parameters,) = query(tmp_path, "SELECT parameters FROM flow_runs WHERE flow_name = 'greet'")[0]
    loaded = json.loads(parameters)
    assert loaded["times"] == 3  # a single {{ expression }} keeps its JSON type
    assert isinstance(loaded["name"], str) and loaded["name"]


def test_a_second_serve_process_for_the_same_deployment_never_runs_a_time_twice(
    tmp_path: Path,
) -> None:
    body = 'serve(greet.to_deployment("shared", interval=1), pause_on_shutdown=False)\n'
    with ServeProcess(tmp_path, body) as one, ServeProcess(tmp_path, body) as two:
        one.wait_ready()
        two.wait_ready()
        wait_until(lambda: len(_completed(tmp_path, "greet/shared")) >= 4, 40, "four runs")
        one.stop()
        two.stop()
    expected = [row[0] for row in _completed(tmp_path, "greet/shared")]
    assert len(expected) == len(set(expected))
    # every run that ran was claimed (Scheduled → Pending) by one of the two launchers
    assert query(
        tmp_path,
        "SELECT count(*) FROM flow_runs WHERE state_type = 'COMPLETED' AND launcher IS NULL",
    ) == [(0,)]
    # both processes are gone: no run is left Pending or Running
    assert query(
        tmp_path,
        "SELECT count(*) FROM flow_runs WHERE state_type IN ('PENDING', 'RUNNING')",
    ) == [(0,)]


def test_a_suspended_run_stops_its_process_and_runs_again_when_resumed(tmp_path: Path) -> None:
    import uuid

    from headwater.deployments import runs
    from headwater.settings import temporary_settings

    with ServeProcess(tmp_path, 'serve(sleepy.to_deployment("sleepy"))\n') as serving:
        serving.wait_ready()
        run_id, pid = _start_sleepy(tmp_path, "-p", "seconds=4")
        with temporary_settings(home=tmp_path, database_url=None):
            runs.suspend_run(uuid.UUID(run_id), "waiting for a person", 600)
            wait_until(lambda: not process_alive(pid), 15, "the process to stop")
            assert run_state(tmp_path, run_id)[:2] == ("PAUSED", "Suspended")
            runs.resume_run(uuid.UUID(run_id))
        _, second = wait_until(
            lambda: [(run_id, p) for p in [_marker_pid(tmp_path)] if p], 30, "a new process"
        )[0]
        assert second != pid
        wait_until(lambda: run_state(tmp_path, run_id)[0] == "COMPLETED", 30, "Completed")
    assert query(tmp_path, "SELECT run_count FROM flow_runs WHERE id = ?", run_id) == [(2,)]


def _marker_pid(home: Path) -> int | None:
    found = list((home / "markers").glob("sleepy.*"))
    return int(found[0].read_text()) if found else None


def test_pausing_from_the_cli_stops_a_served_schedule_and_resuming_restarts_it(
    tmp_path: Path,
) -> None:
    with ServeProcess(tmp_path, 'serve(greet.to_deployment("every", interval=1))\n') as serving:
        serving.wait_ready()
        wait_until(lambda: _completed(tmp_path, "greet/every"), 30, "a first run")
        assert headwater(tmp_path, "deployment", "pause", "greet/every").returncode == 0
        time.sleep(1.5)  # a run claimed just before the pause may still finish
        done = len(_completed(tmp_path, "greet/every"))
        time.sleep(2.5)
        assert len(_completed(tmp_path, "greet/every")) == done  # nothing ran while paused
        assert query(tmp_path, "SELECT count(*) FROM flow_runs WHERE state_name = 'Scheduled'") == [
            (0,)
        ]
        # a run requested by hand still runs while the schedule is paused
        assert headwater(tmp_path, "deployment", "run", "greet/every", "--watch").returncode == 0
        assert headwater(tmp_path, "deployment", "resume", "greet/every").returncode == 0
        wait_until(lambda: len(_completed(tmp_path, "greet/every")) >= done + 3, 30, "runs again")


def test_a_script_that_serves_at_import_does_not_serve_again_in_its_runs(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    from serve_helpers import environment

    script = tmp_path / "unguarded.py"
    script.write_text(
        "from headwater import flow\n\n\n@flow\ndef hi() -> int:\n    return 1\n\n\n"
        'hi.serve(name="unguarded")  # no `if __name__ == "__main__":` guard\n'
    )
    process = subprocess.Popen(
        [sys.executable, str(script)],
        env=environment(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: query(tmp_path, "SELECT id FROM deployments"), 30, "serve")
        ran = headwater(tmp_path, "deployment", "run", "hi/unguarded", "--watch")
        assert ran.returncode == 0, ran.stdout + ran.stderr
        # only the one serve process ever registered or launched anything
        launchers = query(tmp_path, "SELECT DISTINCT launcher FROM flow_runs")
        assert len(launchers) == 1
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert "serve() was called while a deployment's run loaded its flow" in output
