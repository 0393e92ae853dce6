"""Actions on flow runs: cancel a live run; suspend/resume need a deployment."""

from __future__ import annotations

import asyncio
from pathlib import Path

from automation_helpers import wait_until
from support import EventLog

from headwater import emit_event, flow
from headwater.automations import Automation, CancelFlowRun, EventTrigger, SuspendFlowRun


def test_cancel_flow_run_cancels_the_live_run(home: Path, events: EventLog) -> None:
    Automation(
        name="kill-switch",
        trigger=EventTrigger(expect=["please.cancel"]),
        actions=[CancelFlowRun()],
    ).create()

    @flow
    async def long_running() -> None:
        emit_event("please.cancel", resource={"headwater.resource.id": "switch"})
        await asyncio.sleep(20)

    state = asyncio.run(long_running(return_state=True))
    assert state.is_cancelled()
    assert wait_until(lambda: any(e.event.endswith("action.executed") for e in events))


def test_suspend_needs_a_deployment_and_ended_runs_are_not_cancelled(
    home: Path, events: EventLog
) -> None:
    Automation(
        name="suspend",
        trigger=EventTrigger(expect=["headwater.flow-run.Completed"]),
        actions=[SuspendFlowRun(), CancelFlowRun()],
    ).create()

    @flow
    def quick() -> int:
        return 1

    assert quick() == 1
    assert wait_until(lambda: len([e for e in events if e.event.endswith("action.failed")]) == 2)
    reasons = sorted(e.payload["reason"] for e in events if e.event.endswith("action.failed"))
    assert "is not a run of a deployment" in reasons[0]
    assert reasons[1].endswith("is not running: it has ended or is unknown")
