"""Triggers given to a deployment (Prefect's ``prefect.events.schemas.deployment_triggers``)."""

from headwater.automations.deployment_triggers import (
    DeploymentCompoundTrigger,
    DeploymentEventTrigger,
    DeploymentSequenceTrigger,
    DeploymentTrigger,
)

__all__ = [
    "DeploymentCompoundTrigger",
    "DeploymentEventTrigger",
    "DeploymentSequenceTrigger",
    "DeploymentTrigger",
]
