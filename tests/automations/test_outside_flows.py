"""A plain script's own events, with no flow run anywhere: stored, and automations fire."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from automation_helpers import Receiver

from headwater.automations import Automation, CallWebhook, EventTrigger

SCRIPT = textwrap.dedent(
    """
    from headwater import emit_event

    emit_event("file.arrived", resource={"headwater.resource.id": "file.orders.csv"},
               payload={"rows": 12})
    """
)


def test_an_event_emitted_outside_any_flow_is_stored_and_fires_automations(
    home: Path, receiver: Receiver
) -> None:
    Automation(
        name="on-file",
        trigger=EventTrigger(expect={"file.arrived"}),
        actions=[CallWebhook(url=f"{receiver.url}/files", payload="{{ event.payload.rows }}")],
    ).create()
    env = dict(os.environ, HEADWATER_HOME=str(home), HEADWATER_LOGGING_TO_CONSOLE="false")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    # the process has exited: the action ran before it did, and the event was committed
    assert [(method, path, body) for method, path, body in receiver.requests] == [
        ("POST", "/files", b"12")
    ]
    with sqlite3.connect(home / "headwater.db") as db:
        stored = db.execute("SELECT resource_id FROM events WHERE event = 'file.arrived'")
        assert [row[0] for row in stored] == ["file.orders.csv"]


def test_events_emit_on_a_fresh_home_prints_nothing_but_its_answer(tmp_path: Path) -> None:
    env = dict(os.environ, HEADWATER_HOME=str(tmp_path / "fresh"))
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-m", "headwater", "events", "emit", "x.y", "--resource-id", "r"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0 and done.stderr == ""
        assert done.stdout.startswith("Successfully emitted event 'x.y'")


STOPPING = textwrap.dedent(
    """
    from headwater import emit_event, lifecycle

    for i in range(8):
        emit_event("order.placed", resource={"headwater.resource.id": f"order.{i}"})
    lifecycle.stop_all(timeout=1.0)  # a shutdown whose drain runs out before the actions do
    """
)


def test_actions_left_at_shutdown_are_recorded_failed_never_dropped(
    home: Path, receiver: Receiver
) -> None:
    automation = Automation(
        name="slow-hook",
        trigger=EventTrigger(expect={"order.placed"}),
        actions=[CallWebhook(url=f"{receiver.url}/slow", timeout=30)],
    ).create()
    env = dict(os.environ, HEADWATER_HOME=str(home), HEADWATER_LOGGING_TO_CONSOLE="false")
    done = subprocess.run(
        [sys.executable, "-c", STOPPING], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(home / "headwater.db") as db:
        rows = db.execute(
            "SELECT event, json_extract(data, '$.payload.reason') FROM events"
            " WHERE resource_id = ? AND event LIKE 'headwater.automation.action.%'",
            (f"headwater.automation.{automation.id}",),
        ).fetchall()
    outcomes = [(event.rsplit(".", 1)[1], reason) for event, reason in rows]
    finished = [o for o in outcomes if o[0] in ("executed", "failed")]
    assert len(finished) == 8, outcomes  # every firing's action has an outcome
    reasons = {reason for kind, reason in finished if kind == "failed"}
    assert reasons <= {
        "not run: the process stopped before this action's turn",
        "interrupted: the process stopped while this action ran",
    }
    assert reasons  # the slow receiver answers after 1.5 s: some were cut off
