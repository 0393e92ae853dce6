"""Automations: when something happens (or fails to), do something (``prefect.automations``).

.. code-block:: python

    from headwater.automations import Automation, EventTrigger, CallWebhook

    Automation(
        name="tell ops about failures",
        trigger=EventTrigger(expect={"headwater.flow-run.Failed"}, match_related={
            "headwater.resource.id": "headwater.tag.prod"}),
        actions=[CallWebhook(url="https://ops.example/hook", payload="{{ event.resource.name }}")],
    ).create()

Evaluation runs in the server when there is one, and otherwise in the process that runs
the flows (see :mod:`headwater.automations.service`).
"""

from headwater.automations.actions_model import (
    CallWebhook,
    CancelFlowRun,
    ChangeFlowRunState,
    DoNothing,
    EmitEvent,
    PauseAutomation,
    ResumeAutomation,
    ResumeFlowRun,
    SendNotification,
    SuspendFlowRun,
)
from headwater.automations.automation import Automation
from headwater.automations.model import (
    CompoundTrigger,
    EventTrigger,
    Posture,
    SequenceTrigger,
)
from headwater.automations.service import ensure_reactor, start_reactor, stop_reactor

__all__ = [
    "Automation",
    # triggers
    "EventTrigger",
    "CompoundTrigger",
    "SequenceTrigger",
    "Posture",
    # actions
    "DoNothing",
    "SendNotification",
    "CallWebhook",
    "EmitEvent",
    "CancelFlowRun",
    "SuspendFlowRun",
    "ResumeFlowRun",
    "ChangeFlowRunState",
    "PauseAutomation",
    "ResumeAutomation",
    # where evaluation runs
    "start_reactor",
    "ensure_reactor",
    "stop_reactor",
]
