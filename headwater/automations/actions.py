"""Carrying out one action: what each action type does, with the firing as its input.

:func:`perform` is called by the action runner (:mod:`headwater.automations.runner`), off
the reactor's path. It returns the details for the ``action.executed`` event, or raises
:class:`~headwater.exceptions.ActionFailed` with the reason for ``action.failed`` (marked
retryable when trying again may help). Templates are rendered here, with ``flow_run``,
``flow`` and ``task_run`` loaded from the database only when a template mentions them.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import msgspec

from headwater.automations.actions_model import (
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
from headwater.automations.rendering import render, render_value
from headwater.automations.templates import TemplateRenderError, referenced_names
from headwater.automations.webhook import call_webhook
from headwater.engine.control import request_cancellation
from headwater.events.bus import get_bus
from headwater.events.emit import emit_event
from headwater.events.schema import RESOURCE_ID, RESOURCE_NAME, RESOURCE_ROLE, Event
from headwater.exceptions import ActionFailed, DeploymentError, HeadwaterError
from headwater.ids import new_uuid

if TYPE_CHECKING:
    from headwater.automations.model import Action, AutomationDefinition
    from headwater.automations.triggers import Firing
    from headwater.storage.database import Database

__all__ = ["ActionContext", "perform", "infer_flow_run_id"]

_FLOW_RUN = "headwater.flow-run."
_TASK_RUN = "headwater.task-run."
_AUTOMATION = "headwater.automation."
_DEPLOYMENT = "headwater.deployment."


class ActionContext:
    """Everything one action invocation may use.

    Attributes:
        automation: the automation that fired.
        action: the action to carry out.
        firing: the firing (labels, time, original triggering event).
        event: this action's triggering event (the ``automation.triggered`` event for
            ``actions_on_trigger``).
        database: for loading runs into templates (None: nothing is loaded).
        related: resources the action touched, added to its events.
    """

    def __init__(
        self,
        automation: AutomationDefinition,
        action: Action,
        firing: Firing,
        event: Event | None,
        database: Database | None,
    ) -> None:
        self.automation = automation
        self.action = action
        self.firing = firing
        self.event = event
        self.database = database
        self.related: list[dict[str, str]] = []

    def events(self) -> list[Event]:
        """The action's triggering event, then the firing's, for inference."""
        found = [self.event] if self.event is not None else []
        if self.firing.event is not None and self.firing.event is not self.event:
            found.append(self.firing.event)
        return found

    def target(self, resource_id: str, role: str = "target") -> None:
        self.related.append({RESOURCE_ID: resource_id, RESOURCE_ROLE: role})


def infer_flow_run_id(context: ActionContext) -> uuid.UUID | None:
    """The flow run an action is about: the firing's ``headwater.resource.id`` label, then
    the first ``headwater.flow-run.*`` resource of the triggering events (Prefect's order)."""
    candidates = [context.firing.labels.get(RESOURCE_ID, "")]
    for event in context.events():
        candidates.append(event.resource.get(RESOURCE_ID, ""))
        candidates.extend(related.get(RESOURCE_ID, "") for related in event.related)
    for candidate in candidates:
        if candidate.startswith(_FLOW_RUN):
            try:
                return uuid.UUID(candidate[len(_FLOW_RUN) :])
            except ValueError:
                continue
    return None


def _require_flow_run(context: ActionContext) -> uuid.UUID:
    flow_run_id = infer_flow_run_id(context)
    if flow_run_id is None:
        raise ActionFailed("No flow run could be inferred from the triggering event")
    context.target(f"{_FLOW_RUN}{flow_run_id}")
    return flow_run_id


async def _flow_run_record(context: ActionContext, flow_run_id: uuid.UUID) -> Any:
    if context.database is None:
        return None
    from headwater.storage.queries import read_flow_run

    detail = await read_flow_run(context.database, flow_run_id, log_limit=0)
    if detail is None:
        # persistence may not have written the triggering event yet: let it catch up once
        await get_bus().aflush(timeout=5.0)
        detail = await read_flow_run(context.database, flow_run_id, log_limit=0)
    return None if detail is None else detail.run


def _as_dict(record: Any) -> dict[str, Any] | None:
    return None if record is None else msgspec.to_builtins(record)


async def template_context(context: ActionContext, *sources: str) -> dict[str, Any]:
    """The names a template may use; the lazy ones only if ``sources`` mention them."""
    firing = context.firing
    scope: dict[str, Any] = {
        "automation": context.automation,
        "event": context.event,
        "labels": dict(firing.labels),
        "firing": {
            "trigger": firing.node.path,
            "state": firing.state,
            "labels": dict(firing.labels),
            "at": datetime.datetime.fromtimestamp(firing.at, datetime.timezone.utc),
            "event": firing.event,
        },
    }
    wanted = referenced_names(*sources)
    if not wanted:
        return scope
    flow_run_id = infer_flow_run_id(context)
    run = None if flow_run_id is None else await _flow_run_record(context, flow_run_id)
    scope["flow_run"] = _as_dict(run)
    scope["flow"] = None if run is None else {"name": run.flow_name}
    if "task_run" in wanted:
        scope["task_run"] = await _task_run(context)
    return scope


async def _task_run(context: ActionContext) -> dict[str, Any] | None:
    if context.database is None:
        return None
    from headwater.storage.queries import read_task_run

    for event in context.events():
        for resource in (event.resource, *event.related):
            resource_id = resource.get(RESOURCE_ID, "")
            if resource_id.startswith(_TASK_RUN):
                detail = await read_task_run(
                    context.database, uuid.UUID(resource_id[len(_TASK_RUN) :]), log_limit=0
                )
                return None if detail is None else _as_dict(detail.run)
    return None


async def _rendered(source: str, scope: Mapping[str, Any]) -> str:
    # off the event loop: rendering is CPU work with its own time budget
    try:
        return await anyio.to_thread.run_sync(render, source, scope)
    except TemplateRenderError as exc:
        raise ActionFailed(
            f"the template could not be rendered: {exc.error}",
            details={"template_error": exc.error, "template_source": exc.source},
        ) from None


async def perform(context: ActionContext) -> dict[str, Any]:
    """Carry out ``context.action``; return the details of its ``action.executed`` event.

    Raises:
        ActionFailed: the reason, ``retryable`` when a later attempt may succeed.
    """
    action = context.action
    handler = _HANDLERS.get(type(action))
    if handler is None:  # pragma: no cover - every action type has a handler
        raise ActionFailed(f"{action.type} actions are not supported")
    result: dict[str, Any] = await handler(context)
    return result


async def _do_nothing(context: ActionContext) -> dict[str, Any]:
    return {}


async def _send_notification(context: ActionContext) -> dict[str, Any]:
    action = context.action
    assert isinstance(action, SendNotification)
    scope = await template_context(context, action.subject, action.body)
    subject, body = await _rendered(action.subject, scope), await _rendered(action.body, scope)
    try:
        from headwater.blocks import Block
    except ImportError:  # pragma: no cover - blocks ship with headwater
        raise ActionFailed("notification blocks are not available in this installation") from None
    try:
        if action.block_document_id is not None:
            block: Any = await Block.aload_from_id(action.block_document_id)
        else:
            assert action.block is not None
            block = await Block.aload(action.block)
    except HeadwaterError as exc:
        raise ActionFailed(f"cannot load the notification block: {exc}") from None
    if not hasattr(block, "anotify"):
        raise ActionFailed(f"the block {action.block or action.block_document_id} cannot notify")
    document_id = getattr(block, "_block_document_id", None)
    if document_id is not None:
        context.target(f"headwater.block-document.{document_id}", "block")
    try:
        with block.raise_on_failure():
            await block.anotify(body, subject=subject)
    except HeadwaterError as exc:
        raise ActionFailed(f"the notification was not delivered: {exc}", retryable=True) from None
    return {"subject": subject, "body": body[:1000]}


async def _call_webhook(context: ActionContext) -> dict[str, Any]:
    action = context.action
    assert isinstance(action, CallWebhook)
    scope = await template_context(context, action.payload)
    payload = await _rendered(action.payload, scope)
    return await call_webhook(action.url, action.method, payload, action.headers, action.timeout)


async def _emit_event(context: ActionContext) -> dict[str, Any]:
    action = context.action
    assert isinstance(action, EmitEvent)
    sources = [action.event, *_strings(action.resource), *_strings(action.payload)]
    scope = await template_context(context, *sources)
    try:
        spec = await anyio.to_thread.run_sync(render_value, msgspec.to_builtins(action), scope)
    except TemplateRenderError as exc:
        raise ActionFailed(
            f"the template could not be rendered: {exc.error}",
            details={"template_error": exc.error, "template_source": exc.source},
        ) from None
    try:
        emitted = emit_event(
            spec["event"],
            resource=spec["resource"],
            related=spec["related"],
            payload=spec["payload"],
            follows=context.event,
        )
    except HeadwaterError as exc:
        raise ActionFailed(f"the event could not be emitted: {exc}") from None
    return {"emitted_event_id": None if emitted is None else str(emitted.id)}


def _deployments() -> Any:
    # Imported when an action needs deployments: a process whose flows start the reactor
    # (every flow run checks for automations) does not load them at its first run.
    from headwater.deployments import runs, store

    return runs, store


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


async def _cancel_flow_run(context: ActionContext) -> dict[str, Any]:
    flow_run_id = _require_flow_run(context)
    message = f"Cancelled by Automation {context.automation.id}"
    if request_cancellation(flow_run_id, message):
        return {"flow_run_id": str(flow_run_id)}
    # not running in this process: record the request; the run's launcher stops it
    try:
        runs, _ = _deployments()
        found = await anyio.to_thread.run_sync(runs.request_cancellation, flow_run_id, message)
    except DeploymentError as exc:
        raise ActionFailed(str(exc)) from None
    if found is None:
        raise ActionFailed(f"flow run {flow_run_id} is not running: it has ended or is unknown")
    return {"flow_run_id": str(flow_run_id)}


async def _suspend_flow_run(context: ActionContext) -> dict[str, Any]:
    action = context.action
    assert isinstance(action, SuspendFlowRun)
    flow_run_id = _require_flow_run(context)
    message = f"Suspended by Automation {context.automation.id}"
    runs, _ = _deployments()
    try:
        await anyio.to_thread.run_sync(
            runs.suspend_run, flow_run_id, message, action.timeout_seconds
        )
    except DeploymentError as exc:
        raise ActionFailed(str(exc)) from None
    return {"flow_run_id": str(flow_run_id)}


async def _resume_flow_run(context: ActionContext) -> dict[str, Any]:
    flow_run_id = _require_flow_run(context)
    runs, _ = _deployments()
    try:
        await anyio.to_thread.run_sync(runs.resume_run, flow_run_id)
    except DeploymentError as exc:
        raise ActionFailed(str(exc)) from None
    return {"flow_run_id": str(flow_run_id)}


def _infer_deployment(context: ActionContext) -> uuid.UUID:
    action = context.action
    selected = getattr(action, "deployment_id", None)
    if getattr(action, "source", "selected") == "selected" and selected is not None:
        return uuid.UUID(str(selected))
    for event in context.events():
        for resource in (event.resource, *event.related):
            resource_id = resource.get(RESOURCE_ID, "")
            if resource_id.startswith(_DEPLOYMENT):
                try:
                    return uuid.UUID(resource_id[len(_DEPLOYMENT) :])
                except ValueError:
                    continue
    raise ActionFailed("No deployment could be inferred from the triggering event")


def _typed(rendered: Any, source: Any) -> Any:
    """A value rendered from a single ``{{ expression }}`` keeps the JSON type it reads as."""
    if isinstance(rendered, dict) and isinstance(source, dict):
        return {key: _typed(value, source.get(key)) for key, value in rendered.items()}
    if isinstance(rendered, list) and isinstance(source, list):
        return [_typed(value, inner) for value, inner in zip(rendered, source, strict=False)]
    if isinstance(rendered, str) and isinstance(source, str):
        text = source.strip()
        if text.startswith("{{") and text.endswith("}}") and text.count("{{") == 1:
            try:
                return msgspec.json.decode(rendered)
            except msgspec.DecodeError:
                return rendered
    return rendered


async def _run_deployment(context: ActionContext) -> dict[str, Any]:
    action = context.action
    assert isinstance(action, RunDeployment)
    deployment_id = _infer_deployment(context)
    context.target(f"{_DEPLOYMENT}{deployment_id}")
    runs, deployment_store = _deployments()
    try:
        deployment = await anyio.to_thread.run_sync(deployment_store.read_deployment, deployment_id)
    except DeploymentError as exc:
        raise ActionFailed(str(exc)) from None
    parameters = None
    if action.parameters is not None:
        scope = await template_context(context, *_strings(action.parameters))
        try:
            rendered = await anyio.to_thread.run_sync(render_value, action.parameters, scope)
        except TemplateRenderError as exc:
            raise ActionFailed(
                f"the template could not be rendered: {exc.error}",
                details={"template_error": exc.error, "template_source": exc.source},
            ) from None
        parameters = _typed(rendered, action.parameters)
    due = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
        seconds=action.schedule_after
    )
    trigger = context.event.id if context.event is not None else new_uuid()
    key = f"automation {context.automation.id}, action {action.type}, invocation {trigger}"
    try:
        run, _ = await anyio.to_thread.run_sync(
            lambda: runs.create_run(
                deployment, parameters=parameters, scheduled_time=due, idempotency_key=key
            )
        )
    except DeploymentError as exc:
        raise ActionFailed(str(exc), details={"validation_error": str(exc)}) from None
    context.target(f"{_FLOW_RUN}{run.id}", role="flow-run")
    return {"deployment_id": str(deployment_id), "flow_run_id": str(run.id)}


async def _set_deployment_paused(context: ActionContext) -> dict[str, Any]:
    deployment_id = _infer_deployment(context)
    context.target(f"{_DEPLOYMENT}{deployment_id}")
    paused = isinstance(context.action, PauseDeployment)
    _, deployment_store = _deployments()
    try:
        await anyio.to_thread.run_sync(deployment_store.set_paused, deployment_id, paused)
    except DeploymentError as exc:
        raise ActionFailed(str(exc)) from None
    return {"deployment_id": str(deployment_id), "paused": paused}


async def _change_flow_run_state(context: ActionContext) -> dict[str, Any]:
    action = context.action
    assert isinstance(action, ChangeFlowRunState)
    flow_run_id = _require_flow_run(context)
    run = await _flow_run_record(context, flow_run_id)
    previous = None if run is None else run.state
    name = action.name or action.state.title()
    message = action.message or f"State changed by AutomationDefinition {context.automation.id}"
    state_id, now = new_uuid(), datetime.datetime.now(datetime.timezone.utc)
    validated = {
        "id": str(state_id),
        "type": action.state,
        "name": name,
        "message": message,
        "timestamp": now.isoformat(),
    }
    initial = None
    if previous is not None:
        initial = {
            "id": str(previous.id),
            "type": previous.type,
            "name": previous.name,
            "message": previous.message or "",
            "timestamp": previous.timestamp.isoformat(),
        }
    resource = {
        RESOURCE_ID: f"{_FLOW_RUN}{flow_run_id}",
        "headwater.state-message": message,
        "headwater.state-name": name,
        "headwater.state-timestamp": validated["timestamp"],
        "headwater.state-type": action.state,
    }
    related: list[Mapping[str, str]] = []
    if run is not None:
        resource[RESOURCE_NAME] = run.name
        related.append(
            {
                RESOURCE_ID: f"headwater.flow.{run.flow_name}",
                RESOURCE_ROLE: "flow",
                RESOURCE_NAME: run.flow_name,
            }
        )
    emit_event(
        f"headwater.flow-run.{name}",
        resource=resource,
        related=related,
        payload={
            "intended": {"from": None if previous is None else previous.type, "to": action.state},
            "initial_state": initial,
            "validated_state": validated,
        },
        occurred=now,
        id=state_id,
        follows=None if previous is None else previous.id,
    )
    return {"flow_run_id": str(flow_run_id), "state": validated}


async def _set_automation(context: ActionContext) -> dict[str, Any]:
    from headwater.automations import store

    action = context.action
    assert isinstance(action, (PauseAutomation, ResumeAutomation))
    target = action.automation_id
    if action.source == "inferred":
        target = None
        for event in context.events():
            for resource in (event.resource, *event.related):
                resource_id = resource.get(RESOURCE_ID, "")
                if resource_id.startswith(_AUTOMATION) and target is None:
                    try:
                        target = uuid.UUID(resource_id[len(_AUTOMATION) :])
                    except ValueError:
                        continue
        if target is None:
            raise ActionFailed("No automation could be inferred from the triggering event")
    assert target is not None
    context.target(f"{_AUTOMATION}{target}")
    enabled = isinstance(action, ResumeAutomation)
    if not await store.set_enabled(target, enabled, context.database):
        raise ActionFailed(f"automation {target} does not exist")
    return {"automation_id": str(target), "enabled": enabled}


_HANDLERS: dict[type, Any] = {
    DoNothing: _do_nothing,
    SendNotification: _send_notification,
    CallWebhook: _call_webhook,
    EmitEvent: _emit_event,
    CancelFlowRun: _cancel_flow_run,
    SuspendFlowRun: _suspend_flow_run,
    ResumeFlowRun: _resume_flow_run,
    RunDeployment: _run_deployment,
    PauseDeployment: _set_deployment_paused,
    ResumeDeployment: _set_deployment_paused,
    ChangeFlowRunState: _change_flow_run_state,
    PauseAutomation: _set_automation,
    ResumeAutomation: _set_automation,
}
