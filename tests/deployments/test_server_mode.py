"""The same serve and run code against a real server (HEADWATER_API_URL)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_helpers import HERE, ServeProcess, wait_until

sys.path.insert(0, str(HERE.parent / "client"))
from client_helpers import ServerProcess

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    running = ServerProcess(tmp_path / "server").start()
    try:
        yield running
    finally:
        running.stop()


def _cli(home: Path, api_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    from serve_helpers import environment

    return subprocess.run(
        [sys.executable, "-m", "headwater", *args],
        env=environment(home, HEADWATER_API_URL=api_url),
        cwd=home,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_registers_with_the_server_and_runs_what_another_process_requests(
    tmp_path: Path, server: ServerProcess
) -> None:
    client_home = tmp_path / "client"
    client_home.mkdir()
    body = 'serve(greet.to_deployment("remote"))\n'
    with ServeProcess(client_home, body, HEADWATER_API_URL=server.api_url) as serving:
        found = wait_until(
            lambda: [d for d in server.post("/deployments/filter", {}) if not d["paused"]],
            30,
            "the deployment on the server",
        )
        assert found[0]["name"] == "remote" and found[0]["flow_name"] == "greet"
        ran = _cli(
            client_home,
            server.api_url,
            "deployment",
            "run",
            "greet/remote",
            "-p",
            "name=api",
            "--watch",
            "--watch-timeout",
            "60",
            "--output",
            "json",
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
        final = json.loads(ran.stdout.splitlines()[-1])
        assert final["state_name"] == "Completed"
        detail = server.get(f"/flow_runs/{final['id']}")
        assert detail["state"]["name"] == "Completed"
        assert [state["name"] for state in detail["states"]][:2] == ["Scheduled", "Pending"]
        bad = _cli(
            client_home, server.api_url, "deployment", "run", "greet/remote", "-p", "times=x"
        )
        assert bad.returncode == 2 and "is not of type 'integer'" in bad.stderr
        serving.stop()
    # the local file was never used: the server is the one source of truth
    assert not (client_home / "headwater.db").exists()
    assert server.get(f"/deployments/{found[0]['id']}")["paused"] is True  # pause_on_shutdown
    listing = _cli(client_home, server.api_url, "deployment", "ls", "--output", "json")
    assert json.loads(listing.stdout)["full_name"] == "greet/remote"


def test_the_server_refuses_bad_deployment_requests_clearly(server: ServerProcess) -> None:
    import httpx

    missing = httpx.get(f"{server.api_url}/deployments/name/greet/nope", timeout=10)
    assert missing.status_code == 404 and "no deployment 'greet/nope'" in missing.json()["detail"]
    bad = httpx.post(f"{server.api_url}/deployments/", json={"name": "x"}, timeout=10)
    assert bad.status_code == 422
    claim = httpx.post(f"{server.api_url}/runner/claim", json={"deployment_ids": []}, timeout=10)
    assert claim.status_code == 422 and "launcher" in claim.json()["detail"]
