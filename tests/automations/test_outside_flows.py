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
