"""The HTTP API: probes, run history, error bodies."""

from __future__ import annotations

import uuid

import httpx
import pytest
from server_helpers import RunningServer, wait_until

from headwater import flow, get_run_logger, task
from headwater.events import get_bus


@task
def double(x: int) -> int:
    return 2 * x


@flow(name="server-history-flow")
def history_flow(x: int) -> int:
    get_run_logger().info("doubling %d", x)
    return double(x)


@pytest.fixture(scope="module")
def run_id(server: RunningServer) -> uuid.UUID:
    state = history_flow(3, return_state=True)
    assert get_bus().flush(timeout=20)
    run_id: uuid.UUID = state.state_details.flow_run_id
    # Logs have their own writer loop, not flushed with the bus: wait until they are there.
    wait_until(lambda: bool(httpx.get(f"{server.url}/api/flow_runs/{run_id}/logs").json()))
    return run_id


def test_health_and_ready(server: RunningServer) -> None:
    assert httpx.get(f"{server.url}/api/health").json() is True
    assert httpx.get(f"{server.url}/api/ready").json() == {"ready": True, "observers": 0}


def test_unknown_route_is_json_404(server: RunningServer) -> None:
    response = httpx.get(f"{server.url}/api/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


def test_flow_runs_filter_finds_the_run(server: RunningServer, run_id: uuid.UUID) -> None:
    response = httpx.post(
        f"{server.url}/api/flow_runs/filter",
        json={"flow_name": ["server-history-flow"], "state_type": ["COMPLETED"], "limit": 10},
    )
    assert response.status_code == 200
    assert str(run_id) in [run["id"] for run in response.json()]


def test_flow_run_by_id_has_its_state_history(server: RunningServer, run_id: uuid.UUID) -> None:
    body = httpx.get(f"{server.url}/api/flow_runs/{run_id}").json()
    assert body["id"] == str(run_id)
    assert body["state"]["type"] == "COMPLETED"
    assert [state["name"] for state in body["states"]] == ["Pending", "Running", "Completed"]


def test_task_runs_filter_by_flow_run(server: RunningServer, run_id: uuid.UUID) -> None:
    runs = httpx.post(
        f"{server.url}/api/task_runs/filter", json={"flow_run_id": str(run_id)}
    ).json()
    assert len(runs) == 1 and runs[0]["state"]["name"] == "Completed"
    detail = httpx.get(f"{server.url}/api/task_runs/{runs[0]['id']}").json()
    assert [state["name"] for state in detail["states"]][-1] == "Completed"


def test_flow_run_logs(server: RunningServer, run_id: uuid.UUID) -> None:
    logs = httpx.get(f"{server.url}/api/flow_runs/{run_id}/logs").json()
    assert "doubling 3" in [log["message"] for log in logs]
    same = httpx.post(f"{server.url}/api/logs/filter", json={"flow_run_id": str(run_id)}).json()
    assert same == logs


@pytest.mark.parametrize("kind", ["flow_runs", "task_runs"])
def test_unknown_run_is_404(server: RunningServer, kind: str) -> None:
    run_id = uuid.uuid4()
    response = httpx.get(f"{server.url}/api/{kind}/{run_id}")
    assert response.status_code == 404
    assert response.json() == {"detail": f"no {kind[:-5]} run with id '{run_id}'"}
    assert httpx.get(f"{server.url}/api/{kind}/{run_id}/logs").status_code == 404


def test_malformed_run_id_is_422(server: RunningServer) -> None:
    response = httpx.get(f"{server.url}/api/flow_runs/not-a-uuid")
    assert response.status_code == 422
    assert response.json() == {"detail": "flow run id 'not-a-uuid' is not a UUID"}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"limit": "ten"}, "Expected `int`, got `str` - at `$.limit`"),
        ({"limit": 5000}, "Expected `int` <= 1000 - at `$.limit`"),
        ({"state_type": ["DONE"]}, "Invalid enum value 'DONE' - at `$.state_type[0]`"),
        ({"colour": "red"}, "Object contains unknown field `colour`"),
        ({"since": "yesterday"}, "Invalid RFC3339 encoded datetime - at `$.since`"),
    ],
)
def test_bad_filter_body_is_422_naming_the_field(
    server: RunningServer, body: dict[str, object], detail: str
) -> None:
    response = httpx.post(f"{server.url}/api/flow_runs/filter", json=body)
    assert response.status_code == 422
    assert response.json() == {"detail": f"invalid request body: {detail}"}


def test_body_that_is_not_json_is_422(server: RunningServer) -> None:
    response = httpx.post(f"{server.url}/api/task_runs/filter", content=b"{nope")
    assert response.status_code == 422
    assert response.json()["detail"].startswith("request body is not valid JSON")


def test_bad_logs_query_parameter_is_422(server: RunningServer, run_id: uuid.UUID) -> None:
    response = httpx.get(f"{server.url}/api/flow_runs/{run_id}/logs", params={"limit": "0"})
    assert response.status_code == 422
    assert "'limit' must be an integer from 1 to 1000" in response.json()["detail"]
