"""Deployments and their runs in a real SQLite file: registering, scheduling, claiming."""

from __future__ import annotations

import datetime
import sqlite3
import threading
from pathlib import Path

import msgspec
import pytest
from served_flows import greet, sleepy

from headwater.deployments import runs
from headwater.deployments.schedules import Cron, Interval
from headwater.deployments.store import (
    delete_deployment,
    read_deployment,
    read_deployments,
    set_paused,
    set_schedule_active,
)
from headwater.engine.states import StateType
from headwater.events import get_bus
from headwater.exceptions import (
    DeploymentNotFound,
    DeploymentValidationError,
    ScheduleValidationError,
)

UTC = datetime.timezone.utc
NOW = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def _rows(home: Path, sql: str, *args: object) -> list[tuple]:
    connection = sqlite3.connect(home / "headwater.db")
    try:
        return connection.execute(sql, args).fetchall()
    finally:
        connection.close()


def _events(home: Path, name: str) -> list[dict]:
    get_bus().flush(timeout=10)
    return [
        msgspec.json.decode(data)
        for (data,) in _rows(
            home, "SELECT data FROM events WHERE event = ? ORDER BY occurred", name
        )
    ]


def test_registering_again_keeps_the_id_and_reports_what_changed(home: Path) -> None:
    first = greet.to_deployment("nightly", cron="0 3 * * *", tags=["a"]).apply()
    again = greet.to_deployment("nightly", cron="0 3 * * *", tags=["a"]).apply()
    assert again.id == first.id
    changed = greet.to_deployment("nightly", cron="0 4 * * *", tags=["b"]).apply()
    assert changed.id == first.id
    assert [d.full_name for d in read_deployments()] == ["greet/nightly"]
    created = _events(home, "headwater.deployment.created")
    updated = _events(home, "headwater.deployment.updated")
    assert len(created) == 1 and len(updated) == 1  # the identical registration changed nothing
    assert updated[0]["payload"]["updated_fields"] == ["schedules", "tags"]
    assert updated[0]["payload"]["updates"]["tags"] == {"from": ["a"], "to": ["b"]}
    assert created[0]["resource"]["headwater.resource.name"] == "greet/nightly"


def test_a_deployment_stores_the_flows_parameter_schema_and_defaults(home: Path) -> None:
    stored = greet.to_deployment("d", parameters={"name": "ops"}).apply()
    assert stored.entrypoint.endswith("served_flows.py:greet")
    assert stored.description == "Say hello."
    assert stored.parameter_schema["properties"]["times"]["type"] == "integer"
    assert read_deployment("greet/d").parameters == {"name": "ops"}
    assert read_deployment(str(stored.id)).id == stored.id


def test_bad_definitions_fail_before_anything_is_stored(home: Path) -> None:
    with pytest.raises(ScheduleValidationError, match="'nope' is not a valid cron"):
        greet.to_deployment("x", cron="nope")
    with pytest.raises(DeploymentValidationError, match="has no parameter"):
        greet.to_deployment("x", parameters={"colour": "red"})
    with pytest.raises(DeploymentValidationError, match="'times': 'many' is not of type"):
        greet.to_deployment("x", parameters={"times": "many"})
    with pytest.raises(DeploymentValidationError, match="may not contain"):
        greet.to_deployment("a/b")
    with pytest.raises(DeploymentValidationError, match="concurrency_limit"):
        greet.to_deployment("x", concurrency_limit=0)
    assert read_deployments() == []


def test_unknown_deployments_and_names_get_clear_errors(home: Path) -> None:
    with pytest.raises(DeploymentNotFound, match="no deployment 'greet/missing'"):
        read_deployment("greet/missing")
    with pytest.raises(DeploymentValidationError, match="expected '<flow name>/<deployment name>'"):
        read_deployment("just-a-name")


def _scheduled(home: Path, deployment_id: object) -> list[tuple]:
    return _rows(
        home,
        "SELECT expected_start_time, state_name, idempotency_key FROM flow_runs"
        " WHERE deployment_id = ? ORDER BY expected_start_time",
        str(deployment_id),
    )


def test_the_scheduler_keeps_three_runs_and_an_hour_ahead(home: Path) -> None:
    hourly = greet.to_deployment("hourly", cron="0 * * * *").apply()
    minutely = greet.to_deployment("minutely", interval=60).apply()
    made = runs.schedule_runs([hourly, minutely], NOW)
    assert len(_scheduled(home, hourly.id)) == 3  # 3 runs, the last >= 1 h ahead
    assert len(_scheduled(home, minutely.id)) == 61  # every minute for the next hour
    assert made == 64
    # again: nothing new; a minute later (12:00 is past) one more for each: the minutely
    # one keeps an hour ahead, the hourly one three runs
    assert runs.schedule_runs([hourly, minutely], NOW) == 0
    assert runs.schedule_runs([hourly, minutely], NOW + datetime.timedelta(minutes=1)) == 2
    scheduled = _events(home, "headwater.flow-run.Scheduled")
    assert len(scheduled) == 66  # every run, auto-scheduled or not, announces itself
    related = {r["headwater.resource.role"] for r in scheduled[0]["related"]}
    assert {"flow", "deployment", "tag"} <= related


def test_re_registering_or_a_second_scheduler_never_duplicates_runs(home: Path) -> None:
    deployment = greet.to_deployment("d", cron="*/10 * * * *").apply()
    runs.schedule_runs([deployment], NOW)
    before = _scheduled(home, deployment.id)
    again = greet.to_deployment("d", cron="*/10 * * * *").apply()  # a restarted serve
    threads = [threading.Thread(target=runs.schedule_runs, args=([again], NOW)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _scheduled(home, deployment.id) == before
    keys = [key for _, _, key in before]
    assert len(set(keys)) == len(keys)
    key = next(iter(again.schedule_by_key()))
    assert keys[0] == f"scheduled greet/d {key} 2030-01-01T12:00:00.000000+00:00"


def test_editing_a_schedule_replaces_only_future_auto_scheduled_runs(home: Path) -> None:
    deployment = greet.to_deployment("d", cron="0 * * * *").apply()
    runs.schedule_runs([deployment], NOW - datetime.timedelta(hours=1))  # 11:00, 12:00, 13:00...
    runs.mark_late({str(deployment.id): deployment}, NOW)  # 11:00 is Late
    runs.create_run(deployment, scheduled_time=NOW + datetime.timedelta(days=1))  # a manual one
    edited = greet.to_deployment("d", cron="30 * * * *").apply()
    left = [(when[:16], name) for when, name, _ in _scheduled(home, deployment.id)]
    # the Late run and the requested run stay; the future :00 runs are gone
    assert left == [("2030-01-01T11:00", "Late"), ("2030-01-02T12:00", "Scheduled")]
    runs.schedule_runs([edited], NOW)
    times = [when[11:16] for when, _, _ in _scheduled(home, deployment.id)]
    assert times[1:4] == ["12:30", "13:30", "14:30"]


def test_pausing_deletes_waiting_auto_scheduled_runs_and_a_redeploy_keeps_it_paused(
    home: Path,
) -> None:
    deployment = greet.to_deployment("d", interval=600).apply()
    runs.schedule_runs([deployment], NOW)
    runs.create_run(deployment)
    paused = set_paused("greet/d", True)
    assert paused.paused
    assert [name for _, name, _ in _scheduled(home, deployment.id)] == ["Scheduled"]  # manual
    assert runs.schedule_runs([paused], NOW) == 0
    assert greet.to_deployment("d", interval=600).apply().paused  # not re-activated
    assert not set_paused("greet/d", False).paused


def test_a_paused_schedule_stays_paused_when_registered_again(home: Path) -> None:
    deployment = greet.to_deployment("d", cron="0 3 * * *").apply()
    key = next(iter(deployment.schedule_by_key()))
    set_schedule_active("greet/d", key, False)
    again = greet.to_deployment("d", cron="0 3 * * *").apply()
    assert [s.active for s in again.schedules] == [False]
    assert runs.schedule_runs([again], NOW) == 0
    explicit = greet.to_deployment("d", schedules=[Cron("0 3 * * *", active=True)]).apply()
    assert [s.active for s in explicit.schedules] == [True]


def test_deleting_a_deployment_deletes_its_waiting_runs_and_keeps_its_history(home: Path) -> None:
    deployment = greet.to_deployment("d", interval=600).apply()
    runs.schedule_runs([deployment], NOW)
    delete_deployment("greet/d")
    assert _scheduled(home, deployment.id) == []
    assert read_deployments() == []
    assert len(_events(home, "headwater.deployment.deleted")) == 1
    with pytest.raises(DeploymentNotFound):
        delete_deployment("greet/d")


def test_a_run_request_is_checked_against_the_flows_parameters(home: Path) -> None:
    deployment = greet.to_deployment("d").apply()
    with pytest.raises(DeploymentValidationError) as caught:
        runs.create_run(deployment, parameters={"times": "three", "colour": 1})
    message = str(caught.value)
    assert "'times': 'three' is not of type 'integer'" in message
    assert "unknown parameter(s) ['colour']" in message
    assert _scheduled(home, deployment.id) == []
    run, created = runs.create_run(deployment, parameters={"times": 3}, flow_run_name="x-{times}")
    assert created and run.name == "x-3" and run.parameters == {"times": 3}
    unchecked = greet.to_deployment("loose", enforce_parameter_schema=False).apply()
    assert runs.create_run(unchecked, parameters={"times": "three"})[1]


def test_an_idempotency_key_returns_the_run_made_before(home: Path) -> None:
    deployment = greet.to_deployment("d").apply()
    first, created = runs.create_run(deployment, idempotency_key="order-7")
    second, again = runs.create_run(deployment, idempotency_key="order-7")
    assert created and not again and second.id == first.id
    assert len(_scheduled(home, deployment.id)) == 1


def test_a_due_run_is_claimed_by_exactly_one_launcher(home: Path) -> None:
    deployment = greet.to_deployment("d").apply()
    for _ in range(20):
        runs.create_run(deployment, scheduled_time=NOW)
    claims: list[list[runs.Claim]] = []
    barrier = threading.Barrier(5)

    def launcher(index: int) -> None:
        barrier.wait()
        claims.append(runs.claim_due({str(deployment.id): deployment}, NOW, f"l{index}", 100))

    threads = [threading.Thread(target=launcher, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = [claim.adoption.flow_run_id for batch in claims for claim in batch]
    assert len(claimed) == 20 and len(set(claimed)) == 20
    assert _rows(home, "SELECT count(*) FROM flow_runs WHERE state_type = 'PENDING'") == [(20,)]


def test_the_launcher_capacity_leaves_the_rest_waiting(home: Path) -> None:
    deployment = greet.to_deployment("d").apply()
    for _ in range(5):
        runs.create_run(deployment, scheduled_time=NOW)
    assert len(runs.claim_due({str(deployment.id): deployment}, NOW, "l", 2)) == 2
    assert _rows(home, "SELECT count(*) FROM flow_runs WHERE state_type = 'SCHEDULED'") == [(3,)]


def test_a_full_deployment_limit_enqueues_or_cancels_new_runs(home: Path) -> None:
    queued = sleepy.to_deployment("queued", concurrency_limit=1).apply()
    strict = sleepy.to_deployment(
        "strict", concurrency_limit={"limit": 1, "collision_strategy": "CANCEL_NEW"}
    ).apply()
    for deployment in (queued, strict):
        runs.create_run(deployment, scheduled_time=NOW)
        runs.create_run(deployment, scheduled_time=NOW)
    both = {str(queued.id): queued, str(strict.id): strict}
    assert len(runs.claim_due(both, NOW, "l", 10)) == 2  # one of each
    names = dict(
        _rows(
            home,
            "SELECT deployment_id || state_name, state_message FROM flow_runs"
            " WHERE state_type IN ('SCHEDULED', 'CANCELLED')",
        )
    )
    assert names[f"{queued.id}AwaitingConcurrencySlot"] == "Deployment concurrency limit reached."
    assert names[f"{strict.id}Cancelled"] == "Deployment concurrency limit reached."


def test_catch_up_latest_runs_only_the_newest_late_run(home: Path) -> None:
    deployment = greet.to_deployment("d", interval=60, catchup="latest").apply()
    runs.schedule_runs([deployment], NOW - datetime.timedelta(minutes=10))
    claims = runs.claim_due({str(deployment.id): deployment}, NOW, "l", 100)
    assert len(claims) == 1
    assert claims[0].adoption.scheduled_start_time == NOW
    skipped = _rows(
        home,
        "SELECT count(*) FROM flow_runs WHERE state_type = 'CANCELLED'"
        " AND state_message LIKE 'Skipped:%'",
    )
    assert skipped == [(10,)]


def test_catch_up_with_a_duration_skips_only_runs_later_than_it(home: Path) -> None:
    deployment = greet.to_deployment(
        "d", interval=60, catchup=datetime.timedelta(minutes=3)
    ).apply()
    runs.schedule_runs([deployment], NOW - datetime.timedelta(minutes=10))
    claims = runs.claim_due({str(deployment.id): deployment}, NOW, "l", 100)
    # 11:57, 11:58, 11:59 and 12:00 are within 3 minutes
    assert len(claims) == 4


def test_runs_not_started_in_time_turn_late(home: Path) -> None:
    deployment = greet.to_deployment("d", interval=60).apply()
    runs.schedule_runs([deployment], NOW)
    later = NOW + datetime.timedelta(minutes=2)
    assert runs.mark_late({str(deployment.id): deployment}, later) == 2  # 12:00 and 12:01
    assert runs.mark_late({str(deployment.id): deployment}, later) == 0
    late = _events(home, "headwater.flow-run.Late")
    assert len(late) == 2 and late[0]["payload"]["validated_state"]["type"] == "SCHEDULED"


def test_cancelling_a_waiting_run_ends_it_at_once(home: Path) -> None:
    deployment = greet.to_deployment("d").apply()
    run, _ = runs.create_run(deployment, scheduled_time=NOW + datetime.timedelta(hours=1))
    assert runs.request_cancellation(run.id, "not needed") is not None
    ended = runs.read_run(run.id)
    assert ended is not None and ended.state_type is StateType.CANCELLED
    assert runs.request_cancellation(run.id, "again") is None


def test_interval_schedules_made_from_numbers_and_timedeltas(home: Path) -> None:
    deployment = greet.to_deployment(
        "d", schedules=[Interval(datetime.timedelta(minutes=30), parameters={"times": 2})]
    ).apply()
    runs.schedule_runs([deployment], NOW)
    assert _rows(home, "SELECT DISTINCT parameters FROM flow_runs") == [('{"times":2}',)]


def test_runs_held_back_by_a_limit_do_not_hide_runs_of_other_deployments(home: Path) -> None:
    limited = sleepy.to_deployment("limited", concurrency_limit=1).apply()
    free = greet.to_deployment("free").apply()
    for minute in range(40):  # older than the free run, more than one page of them
        runs.create_run(limited, scheduled_time=NOW - datetime.timedelta(minutes=60 - minute))
    wanted, _ = runs.create_run(free, scheduled_time=NOW)
    both = {str(limited.id): limited, str(free.id): free}
    first = runs.claim_due(both, NOW, "l", 2)
    assert [c.deployment.name for c in first] == ["limited", "free"]
    assert first[1].adoption.flow_run_id == wanted.id
    waiting = _rows(
        home, "SELECT count(*) FROM flow_runs WHERE state_name = 'AwaitingConcurrencySlot'"
    )
    assert waiting == [(39,)]


def test_cancelling_a_run_no_launcher_started_says_it_cannot_stop_it(home: Path) -> None:
    import headwater

    @headwater.flow
    def plain() -> int:
        return 1

    state = plain(return_state=True)
    get_bus().flush(timeout=10)
    (run_id,) = _rows(home, "SELECT id FROM flow_runs WHERE flow_name = 'plain'")[0]
    import uuid

    assert state.is_completed()
    assert runs.request_cancellation(uuid.UUID(run_id), "x") is None  # it has ended
    connection = sqlite3.connect(home / "headwater.db")
    connection.execute("UPDATE flow_runs SET state_type = 'RUNNING' WHERE id = ?", (run_id,))
    connection.commit()
    connection.close()
    with pytest.raises(DeploymentValidationError, match="not started by a serve process"):
        runs.request_cancellation(uuid.UUID(run_id), "x")
