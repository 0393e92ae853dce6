"""Triggers that run a deployment (Prefect's ``DeploymentEventTrigger`` and friends). Pure.

Given in ``flow.to_deployment(triggers=[...])`` or ``flow.serve(triggers=[...])``, each
becomes an automation owned by the deployment whose one action runs it
(``run-deployment``, selected): the trigger's own fields decide when, and ``name``,
``description``, ``enabled`` and ``parameters`` (templates allowed, as for
``RunDeployment``) shape the automation.
"""

from __future__ import annotations

from typing import Any

from headwater.automations.model import CompoundTrigger, EventTrigger, SequenceTrigger

__all__ = [
    "DEPLOYMENT_TRIGGER_FIELDS",
    "DeploymentCompoundTrigger",
    "DeploymentEventTrigger",
    "DeploymentSequenceTrigger",
    "DeploymentTrigger",
    "split_options",
]

DEPLOYMENT_TRIGGER_FIELDS = ("name", "description", "enabled", "parameters", "job_variables")
"""The fields that shape the automation rather than the trigger."""


class DeploymentEventTrigger(EventTrigger, tag="event", kw_only=True):
    """An event trigger that runs the deployment it is given to."""

    name: str | None = None
    description: str = ""
    enabled: bool = True
    parameters: dict[str, Any] | None = None
    job_variables: dict[str, Any] | None = None


class DeploymentCompoundTrigger(CompoundTrigger, tag="compound", kw_only=True):
    """A compound trigger that runs the deployment it is given to."""

    name: str | None = None
    description: str = ""
    enabled: bool = True
    parameters: dict[str, Any] | None = None
    job_variables: dict[str, Any] | None = None


class DeploymentSequenceTrigger(SequenceTrigger, tag="sequence", kw_only=True):
    """A sequence trigger that runs the deployment it is given to."""

    name: str | None = None
    description: str = ""
    enabled: bool = True
    parameters: dict[str, Any] | None = None
    job_variables: dict[str, Any] | None = None


DeploymentTrigger = DeploymentEventTrigger | DeploymentCompoundTrigger | DeploymentSequenceTrigger


def split_options(trigger: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(the trigger's own JSON, the automation's options)`` of a deployment trigger."""
    own = {key: value for key, value in trigger.items() if key not in DEPLOYMENT_TRIGGER_FIELDS}
    options = {key: trigger[key] for key in DEPLOYMENT_TRIGGER_FIELDS if key in trigger}
    return own, options
