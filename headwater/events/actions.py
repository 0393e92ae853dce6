"""What automations do (Prefect's ``prefect.events.actions``)."""

from headwater.automations.actions_model import (
    Action,
    CallWebhook,
    CancelFlowRun,
    ChangeFlowRunState,
    DoNothing,
    EmitEvent,
    PauseAutomation,
    PauseDeployment,
    ResumeAutomation,
    ResumeDeployment,
    ResumeFlowRun,
    RunDeployment,
    SendNotification,
    SuspendFlowRun,
)

__all__ = [
    "Action",
    "CallWebhook",
    "CancelFlowRun",
    "ChangeFlowRunState",
    "DoNothing",
    "EmitEvent",
    "PauseAutomation",
    "PauseDeployment",
    "ResumeAutomation",
    "ResumeDeployment",
    "ResumeFlowRun",
    "RunDeployment",
    "SendNotification",
    "SuspendFlowRun",
]
