"""End to end, in-process: events on the bus → triggers → actions, with no server."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from automation_helpers import Receiver, wait_until
from support import EventLog

from headwater import emit_event, flow
from headwater.automations import (
    Automation,
    CallWebhook,
    DoNothing,
    EmitEvent,
    EventTrigger,
    Posture,
)
from headwater.automations.service import get_reactor, start_reactor, stop_reactor


def _named(events: EventLog, name: str, automation: Automation | None = None) -> list:
    found = [e for e in events if e.event == name]
    if automation is not None:
        found = [e for e in found if e.resource_id == f"headwater.automation.{automation.id}"]
    return found


def test_failed_flow_run_calls_a_webhook_without_a_server(
    home: Path, receiver: Receiver, events: EventLog
) -> None:
    automation = Automation(
        name="failures",
        trigger=EventTrigger(
            expect=["headwater.flow-run.Failed"],
            match_related={
                "headwater.resource.role": "flow",
                "headwater.resource.name": "nightly*",
            },
        ),
        actions=[
            CallWebhook(
                url=f"{receiver.url}/hook",
                payload='{"run": "{{ event.resource.name }}", "flow": "{{ flow_run.flow_name }}",'
                ' "state": "{{ flow_run.state.name }}"}',
            )
        ],
    ).create()

    @flow(name="nightly-load")
    def nightly() -> None:
        raise ValueError("boom")

    state = nightly(return_state=True)
    assert state.is_failed()
    ((method, path, body),) = receiver.wait_for(1)
    assert (method, path) == ("POST", "/hook")
    sent = json.loads(body)
    assert sent["flow"] == "nightly-load" and sent["state"] == "Failed" and sent["run"]
    assert wait_until(lambda: _named(events, "headwater.automation.action.executed"))
    executed = _named(events, "headwater.automation.action.executed", automation)[0]
    assert executed.payload["status_code"] == 200
    triggered = _named(events, "headwater.automation.triggered", automation)[0]
    assert triggered.related[0]["headwater.resource.role"] == "triggering-event"


def test_a_flow_that_does_not_match_fires_nothing(home: Path, events: EventLog) -> None:
    Automation(
        name="only-prod",
        trigger=EventTrigger(expect=["headwater.flow-run.Failed"]),
        actions=[DoNothing()],
    ).create()

    @flow
    def fine() -> int:
        return 1

    assert fine() == 1
    reactor = get_reactor()
    assert reactor is not None  # started because an automation exists
    stop_reactor()
    assert not _named(events, "headwater.automation.triggered")


def test_no_reactor_starts_when_no_automation_exists(home: Path) -> None:
    @flow
    def fine() -> int:
        return 1

    assert fine() == 1
    assert get_reactor() is None


def test_send_notification_through_a_custom_webhook_block(
    home: Path, receiver: Receiver, events: EventLog
) -> None:
    from headwater.automations import SendNotification
    from headwater.blocks.notifications import CustomWebhookNotificationBlock

    CustomWebhookNotificationBlock(
        name="ops", url=f"{receiver.url}/notify", json_data={"text": "{{subject}}: {{body}}"}
    ).save("ops")
    Automation(
        name="notify",
        trigger=EventTrigger(expect=["headwater.flow-run.Failed"]),
        actions=[
            SendNotification(
                block="custom-webhook/ops",
                subject="failure",
                body="run {{ event.resource.name }} of {{ flow.name }} failed",
            )
        ],
    ).create()

    @flow(name="etl")
    def etl() -> None:
        raise RuntimeError("no")

    etl(return_state=True)
    ((_method, path, body),) = receiver.wait_for(1)
    assert path == "/notify"
    text = json.loads(body)["text"]
    assert text.startswith("failure: run ") and text.endswith(" of etl failed")


def test_proactive_trigger_fires_when_the_event_does_not_come(home: Path, events: EventLog) -> None:
    automation = Automation(
        name="stuck",
        trigger=EventTrigger(
            after=["job.started"],
            expect=["job.finished"],
            for_each=["headwater.resource.id"],
            posture=Posture.Proactive,
            within=0.3,
        ),
        actions=[DoNothing()],
    ).create()
    start_reactor()
    emit_event("job.started", resource={"headwater.resource.id": "job.slow"})
    emit_event("job.started", resource={"headwater.resource.id": "job.quick"})
    emit_event("job.finished", resource={"headwater.resource.id": "job.quick"})
    assert wait_until(lambda: _named(events, "headwater.automation.action.executed"))
    stop_reactor()
    fired = _named(events, "headwater.automation.triggered", automation)
    assert [e.payload["triggering_labels"] for e in fired] == [
        {"headwater.resource.id": "job.slow"}
    ]


def test_restarted_reactor_resumes_an_open_window_and_fires_once(
    home: Path, events: EventLog
) -> None:
    automation = Automation(
        name="resume",
        trigger=EventTrigger(
            after=["batch.opened"],
            expect=["batch.closed"],
            posture=Posture.Proactive,
            within=1.0,
        ),
        actions=[DoNothing()],
    ).create()
    first = start_reactor()
    emit_event("batch.opened", resource={"headwater.resource.id": "batch.1"})
    stop_reactor()  # checkpoints the open window and releases it
    assert not _named(events, "headwater.automation.triggered")
    second = start_reactor()
    assert second is not first
    assert wait_until(lambda: _named(events, "headwater.automation.action.executed"))
    stop_reactor()
    third = start_reactor()  # nothing left to fire
    stop_reactor()
    assert third is not second
    assert len(_named(events, "headwater.automation.triggered", automation)) == 1


def test_hundreds_of_automations_each_fire_for_their_own_event(
    home: Path, events: EventLog
) -> None:
    import asyncio

    from headwater.automations import store
    from headwater.storage.database import Database

    async def create_all() -> list[Automation]:
        database = await Database.open()
        try:
            return [
                await store.create_automation(
                    Automation(
                        name=f"a{index}",
                        trigger=EventTrigger(
                            expect=[f"load.{index}"] if index % 3 else [f"load.{index}*"],
                            match={"headwater.resource.id": f"res.{index % 7}"},
                        ),
                        actions=[DoNothing()],
                    ),
                    database,
                )
                for index in range(300)
            ]
        finally:
            await database.close()

    created = asyncio.run(create_all())
    reactor = start_reactor()
    for index in range(300):
        emit_event(f"load.{index}", resource={"headwater.resource.id": f"res.{index % 7}"})
        emit_event(f"load.{index}", resource={"headwater.resource.id": "res.none"})
    emit_event("unrelated", resource={"headwater.resource.id": "res.1"})
    assert wait_until(lambda: len(_named(events, "headwater.automation.action.executed")) >= 300)
    stop_reactor()
    assert len(reactor.loaded) == 300
    fired = [e.resource_id for e in _named(events, "headwater.automation.triggered")]
    # load.1* also covers load.10..19 etc., so prefix automations may fire more than once
    for index, automation in enumerate(created):
        count = fired.count(f"headwater.automation.{automation.id}")
        assert count >= 1 if index % 3 == 0 else count == 1, (index, count)


def test_a_template_error_fails_the_action_not_the_reactor(
    home: Path, receiver: Receiver, events: EventLog
) -> None:
    automation = Automation(
        name="bad-template",
        trigger=EventTrigger(expect=["ping"]),
        actions=[CallWebhook(url=f"{receiver.url}/x", payload="{{ event.nothing.here }}")],
    ).create()
    start_reactor()
    emit_event("ping", resource={"headwater.resource.id": "p.1"})
    emit_event("ping", resource={"headwater.resource.id": "p.2"})
    assert wait_until(
        lambda: len(_named(events, "headwater.automation.action.failed", automation)) == 2
    )
    failed = _named(events, "headwater.automation.action.failed", automation)[0]
    assert "nothing" in failed.payload["template_error"]
    assert failed.payload["reason"].startswith("the template could not be rendered")
    assert failed.payload["template_source"] == "{{ event.nothing.here }}"
    assert failed.follows is not None
    assert not receiver.requests


def test_a_slow_action_does_not_delay_the_next_evaluation(
    home: Path, receiver: Receiver, events: EventLog
) -> None:
    slow = Automation(
        name="slow",
        trigger=EventTrigger(expect=["go.slow"]),
        actions=[CallWebhook(url=f"{receiver.url}/slow", timeout=10)],
    ).create()
    fast = Automation(
        name="fast", trigger=EventTrigger(expect=["go.fast"]), actions=[DoNothing()]
    ).create()
    start_reactor()
    emit_event("go.slow", resource={"headwater.resource.id": "s"})
    assert wait_until(lambda: _named(events, "headwater.automation.action.triggered", slow))
    emit_event("go.fast", resource={"headwater.resource.id": "f"})
    assert wait_until(lambda: _named(events, "headwater.automation.action.executed", fast))
    # the fast automation fired and acted while the slow call was still waiting for an answer
    assert not _named(events, "headwater.automation.action.executed", slow)
    receiver.release_slow.set()
    assert wait_until(lambda: _named(events, "headwater.automation.action.executed", slow))


def test_emit_event_and_change_flow_run_state_actions(home: Path, events: EventLog) -> None:
    run_id = uuid.uuid4()
    Automation(
        name="relay",
        trigger=EventTrigger(expect=["order.placed"]),
        actions=[
            EmitEvent(
                event="order.relayed",
                resource={"headwater.resource.id": "relay.{{ event.resource.id }}"},
                payload={"count": "{{ labels | length }}"},
            )
        ],
    ).create()
    start_reactor()
    emit_event("order.placed", resource={"headwater.resource.id": f"headwater.flow-run.{run_id}"})
    assert wait_until(lambda: _named(events, "order.relayed"))
    relayed = _named(events, "order.relayed")[0]
    assert relayed.resource_id == f"relay.headwater.flow-run.{run_id}"


def test_a_plain_script_acts_before_it_exits(tmp_path: Path, receiver: Receiver) -> None:
    import os
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        from headwater import flow
        from headwater.automations import Automation, CallWebhook, EventTrigger

        Automation(
            name="exit",
            trigger=EventTrigger(expect=["headwater.flow-run.Failed"]),
            actions=[CallWebhook(url="{receiver.url}/exit", payload="{{{{ event.event }}}}")],
        ).create()

        @flow
        def fails():
            raise ValueError("x")

        fails(return_state=True)
        """
    )
    env = {**os.environ, "HEADWATER_HOME": str(tmp_path), "HEADWATER_LOGGING_TO_CONSOLE": "false"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert receiver.requests == [("POST", "/exit", b"headwater.flow-run.Failed")]


HEAVY = "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"


def test_a_template_over_its_budget_fails_its_action_and_stalls_nothing(
    home: Path, receiver: Receiver, events: EventLog
) -> None:
    from headwater import flow

    heavy = Automation(
        name="heavy",
        trigger=EventTrigger(expect=["go.heavy"]),
        actions=[CallWebhook(url=f"{receiver.url}/heavy", payload=HEAVY)],
    ).create()
    light = Automation(
        name="light", trigger=EventTrigger(expect=["go.light"]), actions=[DoNothing()]
    ).create()
    start_reactor()

    @flow
    def meanwhile() -> int:
        return 1

    emit_event("go.heavy", resource={"headwater.resource.id": "h"})
    assert wait_until(lambda: _named(events, "headwater.automation.action.triggered", heavy))
    # while it renders: other automations act, flows run and are written
    emit_event("go.light", resource={"headwater.resource.id": "l"})
    assert meanwhile() == 1
    assert wait_until(lambda: _named(events, "headwater.automation.action.executed", light))
    assert not _named(events, "headwater.automation.action.failed", heavy)  # still rendering
    assert wait_until(lambda: _named(events, "headwater.automation.action.failed", heavy))
    failed = _named(events, "headwater.automation.action.failed", heavy)[0]
    assert "took over 2 s" in failed.payload["template_error"]
    assert not receiver.requests
