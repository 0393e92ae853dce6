"""A trigger written with Prefect's names fires on headwater's events."""

from __future__ import annotations

from pathlib import Path

from automation_helpers import wait_until
from support import EventLog

from headwater import emit_event, flow
from headwater.automations import Automation, EmitEvent, EventTrigger


def test_a_prefect_style_trigger_fires_on_a_headwater_flow_run(
    home: Path, events: EventLog
) -> None:
    Automation(
        name="prefect-style",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Completed"},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": "etl"},
            for_each={"prefect.resource.id"},
        ),
        actions=[
            EmitEvent(
                event="etl.noticed",
                resource={"prefect.resource.id": "ops.{{ event.resource.id }}"},
            )
        ],
    ).create()

    @flow(name="etl")
    def etl() -> int:
        return 1

    @flow(name="other")
    def other() -> int:
        return 2

    assert other() == 2
    assert etl() == 1
    noticed = wait_until(lambda: [e for e in events if e.event == "etl.noticed"])
    assert noticed and len([e for e in events if e.event == "etl.noticed"]) == 1
    emitted = next(e for e in events if e.event == "etl.noticed")
    assert emitted.resource.id.startswith("ops.headwater.flow-run.")


def test_emit_event_with_prefect_labels_is_matched_by_a_headwater_trigger(
    home: Path, events: EventLog
) -> None:
    Automation(
        name="ours",
        trigger=EventTrigger(
            expect=["order.placed"], match={"headwater.resource.id": "shop.order.*"}
        ),
        actions=[EmitEvent(event="order.seen", resource={"headwater.resource.id": "ops"})],
    ).create()
    emit_event("order.placed", resource={"prefect.resource.id": "shop.order.1"})
    assert wait_until(lambda: any(e.event == "order.seen" for e in events))
