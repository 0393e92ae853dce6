"""Action definitions: what an automation does when it fires, as a msgspec tagged union.

The ``type`` values and field names are Prefect's where Prefect has the action
(``call-webhook``, ``cancel-flow-run``...). Differences, on purpose:

- ``send-notification`` names its block by ``block`` (``"custom-webhook/ops"``), or by
  ``block_document_id``; Prefect takes only the id.
- ``call-webhook`` takes the ``url``, ``method`` and ``headers`` directly (Prefect needs a
  Webhook block); ``payload`` is a template, as in Prefect.
- ``emit-event`` is headwater's own: it emits one templated event.

Templates (Jinja, sandboxed) are checked for syntax here, so a typo fails on creation
naming the field; rendering happens when the action runs (see ``templates``).
"""

from __future__ import annotations

import uuid
from typing import Any, Literal, NoReturn

import msgspec

from headwater.events.aliases import headwater_labels
from headwater.exceptions import AutomationValidationError

__all__ = [
    "ACTION_TYPES",
    "Action",
    "ActionSource",
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
    "fail",
]

ActionSource = Literal["selected", "inferred"]

DEFAULT_SUBJECT = "Headwater automated notification"
DEFAULT_BODY = (
    "Automation {{ automation.name }} fired"
    "{% if event %} on {{ event.event }} for {{ event.resource.id }}{% endif %}."
)
_STATE_TYPES = (
    "SCHEDULED",
    "PENDING",
    "RUNNING",
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "CANCELLING",
    "CRASHED",
    "PAUSED",
)
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def fail(field: str, detail: str) -> NoReturn:
    """Reject a definition, naming the field (relative to the struct being checked)."""
    raise AutomationValidationError(field, detail)


def _check_template(source: str, field: str) -> None:
    from headwater.automations.templates import template_syntax_error

    problem = template_syntax_error(source)
    if problem is not None:
        fail(field, f"is not a valid template: {problem}")


class _ActionBase(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, tag_field="type"):
    @property
    def type(self) -> str:
        return str(self.__struct_config__.tag)


class DoNothing(_ActionBase, tag="do-nothing"):
    """Does nothing; the firing still emits its events (useful for testing a trigger)."""


class SendNotification(_ActionBase, tag="send-notification"):
    """Send a notification through a saved notification block.

    Attributes:
        block: the block, as ``"<block-type-slug>/<name>"`` (``"slack-webhook/ops"``).
        block_document_id: the block's id, instead of ``block``.
        subject: templated subject.
        body: templated body.
    """

    block: str | None = None
    block_document_id: uuid.UUID | None = None
    subject: str = DEFAULT_SUBJECT
    body: str = DEFAULT_BODY

    def __post_init__(self) -> None:
        if not self.block and self.block_document_id is None:
            fail("block", "is required: name the notification block to send with")
        if self.block and "/" not in self.block:
            fail("block", f"must be '<block-type-slug>/<name>', e.g. 'slack-webhook/{self.block}'")
        _check_template(self.subject, "subject")
        _check_template(self.body, "body")


class CallWebhook(_ActionBase, tag="call-webhook"):
    """Call an HTTP endpoint; records the status code.

    Attributes:
        url: ``http://`` or ``https://`` URL.
        method: GET, POST, PUT, PATCH or DELETE.
        payload: templated request body; sent as JSON when it parses as JSON.
        headers: extra request headers.
        timeout: seconds before the call counts as failed.
    """

    url: str = ""
    method: str = "POST"
    payload: str = ""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if not self.url:
            fail("url", "is required: the address to call")
        if not self.url.startswith(("http://", "https://")):
            fail("url", f"must be an http:// or https:// URL, got {self.url!r}")
        self.method = self.method.upper()
        if self.method not in _METHODS:
            fail("method", f"must be one of {', '.join(_METHODS)}, got {self.method!r}")
        if not self.timeout > 0:
            fail("timeout", f"must be positive, got {self.timeout}")
        _check_template(self.payload, "payload")


class EmitEvent(_ActionBase, tag="emit-event"):
    """Emit one event; every string in it may be a template.

    Attributes:
        event: the event name.
        resource: the primary resource's labels, with ``headwater.resource.id``.
        related: related resources, each with an id and a role.
        payload: free JSON.
    """

    event: str = ""
    resource: dict[str, str] = msgspec.field(default_factory=dict)
    related: list[dict[str, str]] = msgspec.field(default_factory=list)
    payload: dict[str, Any] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.resource = headwater_labels(self.resource)  # Prefect's label names are ours
        self.related = [headwater_labels(item) for item in self.related]
        if not self.event:
            fail("event", "is required: the name of the event to emit")
        if not self.resource.get("headwater.resource.id"):
            fail("resource", "must include a non-empty 'headwater.resource.id' label")
        _check_template(self.event, "event")


class CancelFlowRun(_ActionBase, tag="cancel-flow-run"):
    """Cancel the flow run inferred from the firing (Cancelling, then Cancelled)."""


class SuspendFlowRun(_ActionBase, tag="suspend-flow-run"):
    """Suspend the inferred flow run of a deployment: its process stops, the run waits
    (Suspended) until resumed, then runs again from the start in a new process."""

    timeout_seconds: float | None = 3600.0


class ResumeFlowRun(_ActionBase, tag="resume-flow-run"):
    """Resume the inferred suspended flow run of a deployment (it runs again)."""


class _DeploymentAction(_ActionBase):
    source: ActionSource = "selected"
    deployment_id: uuid.UUID | None = None

    def __post_init__(self) -> None:
        if self.source == "selected" and self.deployment_id is None:
            fail("deployment_id", "is required when source is 'selected'")
        if self.source == "inferred" and self.deployment_id is not None:
            fail("deployment_id", "must not be given when source is 'inferred'")


class RunDeployment(_DeploymentAction, tag="run-deployment"):
    """Create a run of a deployment: the one selected, or the one the event is about.

    Attributes:
        parameters: None runs with the deployment's defaults; string values may be
            templates, and one that is a single ``{{ expression }}`` keeps the JSON type of
            what it renders (``{{ event.payload.count }}`` stays a number).
        job_variables: accepted for Prefect compatibility (served deployments take none).
        schedule_after: seconds from now when the run is due.
    """

    parameters: dict[str, Any] | None = None
    job_variables: dict[str, Any] | None = None
    schedule_after: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.schedule_after < 0:
            fail("schedule_after", f"must be >= 0 seconds, got {self.schedule_after}")
        for path, value in _strings_in(self.parameters or {}, "parameters"):
            _check_template(value, path)


def _strings_in(value: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [
            item for key, inner in value.items() for item in _strings_in(inner, f"{path}.{key}")
        ]
    if isinstance(value, list):
        return [
            item for i, inner in enumerate(value) for item in _strings_in(inner, f"{path}[{i}]")
        ]
    return []


class PauseDeployment(_DeploymentAction, tag="pause-deployment"):
    """Pause a deployment (its waiting auto-scheduled runs are deleted)."""


class ResumeDeployment(_DeploymentAction, tag="resume-deployment"):
    """Resume a paused deployment (its schedules make runs again)."""


class ChangeFlowRunState(_ActionBase, tag="change-flow-run-state"):
    """Record a new state for the inferred flow run, as a state-change event.

    Attributes:
        state: the state type (``FAILED``, ``CANCELLED``...).
        name: the state name; the type in title case by default.
        message: the state message; by default names the automation.
        force: accepted for Prefect compatibility; the state is always recorded.
    """

    state: str = ""
    name: str | None = None
    message: str | None = None
    force: bool = False

    def __post_init__(self) -> None:
        if not self.state:
            fail("state", f"is required: one of {', '.join(_STATE_TYPES)}")
        self.state = self.state.upper()
        if self.state not in _STATE_TYPES:
            fail("state", f"must be one of {', '.join(_STATE_TYPES)}, got {self.state!r}")


class _AutomationAction(_ActionBase):
    source: ActionSource = "selected"
    automation_id: uuid.UUID | None = None

    def __post_init__(self) -> None:
        if self.source == "selected" and self.automation_id is None:
            fail("automation_id", "is required when source is 'selected'")


class PauseAutomation(_AutomationAction, tag="pause-automation"):
    """Disable an automation: the one selected, or the one the triggering event is about."""


class ResumeAutomation(_AutomationAction, tag="resume-automation"):
    """Enable an automation: the one selected, or the one the triggering event is about."""


Action = (
    DoNothing
    | SendNotification
    | CallWebhook
    | EmitEvent
    | CancelFlowRun
    | SuspendFlowRun
    | ResumeFlowRun
    | ChangeFlowRunState
    | PauseAutomation
    | ResumeAutomation
    | RunDeployment
    | PauseDeployment
    | ResumeDeployment
)

ACTION_TYPES: tuple[str, ...] = (
    "do-nothing",
    "send-notification",
    "call-webhook",
    "emit-event",
    "cancel-flow-run",
    "suspend-flow-run",
    "resume-flow-run",
    "change-flow-run-state",
    "pause-automation",
    "resume-automation",
    "run-deployment",
    "pause-deployment",
    "resume-deployment",
)
