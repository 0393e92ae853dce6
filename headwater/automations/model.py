"""Automation definitions: triggers and actions as msgspec tagged unions (Prefect 3's shapes).

One schema serves Python, YAML/JSON files, the database and the wire: a trigger is
``{"type": "event" | "compound" | "sequence", ...}``, an action ``{"type": "call-webhook",
...}``. Every rule a type hint cannot express is checked in ``__post_init__``, which runs
both when a definition is built in Python and when one is decoded, so a bad definition
fails with :class:`~headwater.exceptions.AutomationValidationError` naming the field
(``trigger.triggers[1].within``) before anything is stored.

Pure: nothing here stores or reads. The CRUD methods users call (``create``/``read``/...)
are on :class:`headwater.automations.automation.Automation`, above the store.
"""

from __future__ import annotations

import datetime
import enum
import re
import uuid
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from headwater.automations.actions_model import (
    Action,
    ActionSource,
    CallWebhook,
    CancelFlowRun,
    ChangeFlowRunState,
    DoNothing,
    EmitEvent,
    PauseAutomation,
    ResumeAutomation,
    ResumeFlowRun,
    RunDeployment,
    SendNotification,
    SuspendFlowRun,
    fail,
)
from headwater.automations.matching import check_glob, names_match, parse_name_pattern
from headwater.events.aliases import headwater_label, headwater_labels, headwater_name
from headwater.exceptions import AutomationValidationError

__all__ = [
    "Posture",
    "ResourceSpecification",
    "EventTrigger",
    "CompoundTrigger",
    "SequenceTrigger",
    "Trigger",
    "AutomationDefinition",
    "parse_automation",
    "parse_automations",
    # re-exported action classes
    "Action",
    "ActionSource",
    "CallWebhook",
    "CancelFlowRun",
    "ChangeFlowRunState",
    "DoNothing",
    "EmitEvent",
    "PauseAutomation",
    "ResumeAutomation",
    "ResumeFlowRun",
    "SendNotification",
    "SuspendFlowRun",
]


ResourceSpecification = dict[str, str | list[str]]
"""Label → value or values (OR-ed); labels AND-ed; globs and ``!`` allowed (see matching)."""


class Posture(str, enum.Enum):
    """Whether a trigger reacts to events that happen or to events that do not."""

    Reactive = "Reactive"
    Proactive = "Proactive"


def _seconds(value: float | datetime.timedelta, field: str) -> float:
    # Wrong types are left for the schema check (validate_automation) to report.
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        return value  # type: ignore[return-value]
    if seconds < 0:
        fail(field, f"must not be negative, got {seconds:g} seconds")
    return seconds


def _check_spec(spec: Mapping[str, Any], field: str) -> None:
    for label, values in spec.items():
        if not label:
            fail(field, "has an empty label name")
        for value in [values] if isinstance(values, str) else values:
            problem = check_glob(value)
            if problem is not None:
                fail(f"{field}.{label}", f"the pattern {value!r} {problem}")


def _check_names(patterns: list[str], field: str) -> None:
    for index, pattern in enumerate(patterns):
        problem = check_glob(pattern) if pattern[:1] != "!" else "may not be negated"
        if problem is not None:
            fail(f"{field}[{index}]", f"the event pattern {pattern!r} {problem}")


class EventTrigger(
    msgspec.Struct, tag="event", tag_field="type", kw_only=True, forbid_unknown_fields=True
):
    """Fires on events that happen (Reactive) or fail to happen (Proactive) in a window.

    Attributes:
        match: spec for the event's primary resource.
        match_related: spec (or list of specs, each met by some related resource).
        after: event names (``prefix*`` and globs allowed), one of which opens a window.
        expect: event names that count toward ``threshold``; empty means any event.
        for_each: labels splitting evaluation into buckets (``related:<role>:<label>`` too).
        posture: Reactive or Proactive.
        threshold: count needed (Reactive), or the count below which it fires (Proactive).
        within: the window in seconds (or a timedelta); 0 means unbounded for Reactive, and
            is raised to the configured minimum (10 s by default) for Proactive.
    """

    match: ResourceSpecification = msgspec.field(default_factory=dict)
    match_related: ResourceSpecification | list[ResourceSpecification] = msgspec.field(
        default_factory=dict
    )
    after: list[str] = msgspec.field(default_factory=list)
    expect: list[str] = msgspec.field(default_factory=list)
    for_each: list[str] = msgspec.field(default_factory=list)
    posture: Posture = Posture.Reactive
    threshold: int = 1
    within: float | datetime.timedelta = 0.0

    def __post_init__(self) -> None:
        # sets are accepted from Python, as Prefect's fields are sets
        self.after, self.expect, self.for_each = (
            sorted(v) if isinstance(v, (set, frozenset)) else list(v)
            for v in (self.after, self.expect, self.for_each)
        )
        # Prefect's names (prefect.flow-run.*, prefect.resource.id) are headwater's
        self.after = [headwater_name(name) for name in self.after]
        self.expect = [headwater_name(name) for name in self.expect]
        self.for_each = [_label_path(label) for label in self.for_each]
        self.match = headwater_labels(self.match)
        if isinstance(self.match_related, list):
            self.match_related = [headwater_labels(spec) for spec in self.match_related]
        else:
            self.match_related = headwater_labels(self.match_related)
        self.within = _seconds(self.within, "within")
        if isinstance(self.threshold, int) and self.threshold < 1:
            fail("threshold", f"must be at least 1, got {self.threshold}")
        _check_spec(self.match, "match")
        if isinstance(self.match_related, list):
            for index, spec in enumerate(self.match_related):
                _check_spec(spec, f"match_related[{index}]")
        else:
            _check_spec(self.match_related, "match_related")
        _check_names(self.after, "after")
        _check_names(self.expect, "expect")
        for index, label in enumerate(self.for_each):
            if not label:
                fail(f"for_each[{index}]", "is an empty label name")


class CompoundTrigger(
    msgspec.Struct, tag="compound", tag_field="type", kw_only=True, forbid_unknown_fields=True
):
    """Fires once ``require`` of its child triggers ("any", "all" or N) have fired within
    ``within`` seconds (None: no time limit)."""

    triggers: list[Trigger]
    require: int | Literal["any", "all"] = "all"
    within: float | datetime.timedelta | None = None

    def __post_init__(self) -> None:
        if not self.triggers:
            fail("triggers", "must hold at least one trigger")
        if isinstance(self.require, int) and not 1 <= self.require <= len(self.triggers):
            fail("require", f"must be between 1 and {len(self.triggers)}, got {self.require}")
        if self.within is not None:
            self.within = _seconds(self.within, "within")

    @property
    def required(self) -> int:
        """How many distinct children must fire."""
        if self.require == "any":
            return 1
        if self.require == "all":
            return len(self.triggers)
        return int(self.require)


class SequenceTrigger(
    msgspec.Struct, tag="sequence", tag_field="type", kw_only=True, forbid_unknown_fields=True
):
    """Fires once every child trigger has fired, in the declared order, within ``within``."""

    triggers: list[Trigger]
    within: float | datetime.timedelta | None = None

    def __post_init__(self) -> None:
        if not self.triggers:
            fail("triggers", "must hold at least one trigger")
        if self.within is not None:
            self.within = _seconds(self.within, "within")


Trigger = EventTrigger | CompoundTrigger | SequenceTrigger


class AutomationDefinition(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What an automation is: when ``trigger`` fires, run ``actions``. Pure data.

    Users build :class:`headwater.automations.Automation`, this plus the methods that
    store it; the reactor and the store deal in definitions.

    Attributes:
        name: unique among automations (the CLI addresses automations by name).
        trigger: an EventTrigger, CompoundTrigger or SequenceTrigger.
        description: free text.
        enabled: disabled automations are never evaluated.
        tags: free labels.
        actions: run on every firing (and resolution), with the triggering event.
        actions_on_trigger: run on firing, with the ``automation.triggered`` event.
        actions_on_resolve: run on resolution, with the ``automation.resolved`` event.
        owner_resource: the resource that owns it (e.g. a deployment), if any.
        id: assigned when stored.
    """

    name: str
    trigger: Trigger
    description: str = ""
    enabled: bool = True
    tags: list[str] = msgspec.field(default_factory=list)
    actions: list[Action] = msgspec.field(default_factory=list)
    actions_on_trigger: list[Action] = msgspec.field(default_factory=list)
    actions_on_resolve: list[Action] = msgspec.field(default_factory=list)
    owner_resource: str | None = None
    id: uuid.UUID | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            fail("name", "must not be empty")
        if self.enabled:
            _check_no_run_loop(self)


def _label_path(label: str) -> str:
    # "prefect.resource.id", or "related:<role>:prefect.resource.name"
    head, colon, tail = label.rpartition(":")
    return f"{head}{colon}{headwater_label(tail)}" if colon else headwater_label(label)


_LOOPING_EVENTS = (
    "headwater.flow-run.Scheduled",
    "headwater.flow-run.Pending",
    "headwater.flow-run.Running",
)


def _check_no_run_loop(automation: AutomationDefinition) -> None:
    """Prefect's guard: an automation that runs the deployment it infers from the start of
    a flow run would start a run for every run it starts, forever."""
    trigger = automation.trigger
    if not isinstance(trigger, EventTrigger) or trigger.posture is not Posture.Reactive:
        return
    patterns = [parse_name_pattern(pattern) for pattern in trigger.expect]
    if not patterns or not any(names_match(patterns, name) for name in _LOOPING_EVENTS):
        return
    for field in ("actions", "actions_on_trigger", "actions_on_resolve"):
        for index, action in enumerate(getattr(automation, field)):
            if isinstance(action, RunDeployment) and action.source == "inferred":
                fail(
                    f"{field}[{index}]",
                    "a run-deployment action with source 'inferred' on a trigger that"
                    " expects flow runs to be scheduled, pending or running would run the"
                    " deployment again for every run it starts; select the deployment",
                )


_AT = re.compile(r"^(?P<inner>.*) - at `\$(?P<path>[^`]*)`$", re.DOTALL)
_OURS = re.compile(r"^invalid automation at (?P<field>\S+): (?P<detail>.*)$", re.DOTALL)
_TRIGGER_KINDS = "event, compound, sequence"


def _translate(exc: msgspec.ValidationError) -> AutomationValidationError:
    text = str(exc)
    found = _AT.match(text)
    inner, path = (found["inner"], found["path"].lstrip(".")) if found else (text, "")
    ours = _OURS.match(inner)
    if ours:
        field = ".".join(part for part in (path, ours["field"]) if part)
        return AutomationValidationError(field.replace(".[", "["), ours["detail"])
    if path.endswith("type") and inner.startswith("Invalid value"):
        kinds = _TRIGGER_KINDS if "trigger" in path.rsplit(".", 2)[0] else _action_kinds()
        inner = f"unknown kind {inner[len('Invalid value ') :]}; expected one of {kinds}"
    return AutomationValidationError(path, inner)


def _action_kinds() -> str:
    from headwater.automations.actions_model import ACTION_TYPES

    return ", ".join(ACTION_TYPES)


def _infer_trigger_types(trigger: Any) -> Any:
    # As prefect.yaml does: triggers+require → compound, triggers alone → sequence, else event.
    if not isinstance(trigger, dict):
        return trigger
    trigger = dict(trigger)
    if "type" not in trigger:
        if "triggers" in trigger:
            trigger["type"] = "compound" if "require" in trigger else "sequence"
        else:
            trigger["type"] = "event"
    if isinstance(trigger.get("triggers"), list):
        trigger["triggers"] = [_infer_trigger_types(child) for child in trigger["triggers"]]
    return trigger


def parse_automation(data: Mapping[str, Any]) -> AutomationDefinition:
    """Build and validate one automation from plain data (a decoded YAML/JSON object).

    Raises:
        AutomationValidationError: the data breaks the schema; the error names the field.
    """
    if not isinstance(data, Mapping):
        raise AutomationValidationError("", f"expected an object, got {type(data).__name__}")
    data = dict(data)
    if "trigger" in data:
        data["trigger"] = _infer_trigger_types(data["trigger"])
    try:
        return msgspec.convert(data, AutomationDefinition)
    except msgspec.ValidationError as exc:
        raise _translate(exc) from None


def parse_automations(data: Any) -> list[AutomationDefinition]:
    """One automation, or ``{"automations": [...]}``, as a file holds them.

    Raises:
        AutomationValidationError: naming ``automations[i].<field>`` for a list.
    """
    if isinstance(data, Mapping) and "automations" in data and "trigger" not in data:
        items = data["automations"]
        if not isinstance(items, list):
            raise AutomationValidationError("automations", "must be a list of automations")
        parsed = []
        for index, item in enumerate(items):
            try:
                parsed.append(parse_automation(item))
            except AutomationValidationError as exc:
                field = f"automations[{index}]" + (f".{exc.field}" if exc.field else "")
                raise AutomationValidationError(field, exc.detail) from None
        return parsed
    return [parse_automation(data)]


def validate_automation(automation: AutomationDefinition) -> AutomationDefinition:
    """Re-check an automation built in Python against the full schema (types included).

    msgspec checks types only when decoding, so a definition built by hand goes through one
    encode/decode round trip before it is stored.
    """
    try:
        builtins = msgspec.to_builtins(automation)
    except (TypeError, msgspec.EncodeError) as exc:
        raise AutomationValidationError("", f"cannot be serialised: {exc}") from None
    return parse_automation(builtins)
