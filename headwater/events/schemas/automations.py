"""Automations and triggers (Prefect's ``prefect.events.schemas.automations``)."""

from headwater.automations.automation import Automation
from headwater.automations.model import (
    AutomationDefinition as AutomationCore,
)
from headwater.automations.model import (
    CompoundTrigger,
    EventTrigger,
    Posture,
    ResourceSpecification,
    SequenceTrigger,
    Trigger,
)

__all__ = [
    "Automation",
    "AutomationCore",
    "CompoundTrigger",
    "EventTrigger",
    "Posture",
    "ResourceSpecification",
    "SequenceTrigger",
    "Trigger",
]
