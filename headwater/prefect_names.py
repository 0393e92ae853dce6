"""Names Prefect's ``prefect.events`` exports that live above the events package.

``from prefect.events import DeploymentEventTrigger, EventTrigger, RunDeployment`` is how
Prefect's documentation writes it, but in headwater triggers and actions belong to
automations, which sit above the event spine. ``headwater.events`` forwards those names
here, so they are imported only when asked for: the spine itself never loads automations.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["EVENTS_EXTRAS", "events_name"]

EVENTS_EXTRAS: dict[str, str] = {
    **{
        name: "headwater.events.schemas.automations"
        for name in (
            "Automation",
            "AutomationCore",
            "CompoundTrigger",
            "EventTrigger",
            "Posture",
            "ResourceSpecification",
            "SequenceTrigger",
            "Trigger",
        )
    },
    **{
        name: "headwater.events.schemas.deployment_triggers"
        for name in (
            "DeploymentCompoundTrigger",
            "DeploymentEventTrigger",
            "DeploymentSequenceTrigger",
            "DeploymentTrigger",
        )
    },
    **{
        name: "headwater.events.actions"
        for name in (
            "Action",
            "CallWebhook",
            "CancelFlowRun",
            "ChangeFlowRunState",
            "DoNothing",
            "PauseAutomation",
            "PauseDeployment",
            "ResumeAutomation",
            "ResumeDeployment",
            "ResumeFlowRun",
            "RunDeployment",
            "SendNotification",
            "SuspendFlowRun",
        )
    },
}
"""Name → the face it comes from."""


def events_name(name: str) -> Any:
    """``headwater.events.<name>`` for the names in :data:`EVENTS_EXTRAS`."""
    module = EVENTS_EXTRAS.get(name)
    if module is None:
        raise AttributeError(f"module 'headwater.events' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
