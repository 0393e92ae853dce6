"""Definitions: validated on creation, errors name the field, nothing is stored."""

from __future__ import annotations

import datetime

import pytest

from headwater.automations import (
    Automation,
    CallWebhook,
    CompoundTrigger,
    EventTrigger,
    PauseAutomation,
    SendNotification,
)
from headwater.automations.model import parse_automation, parse_automations
from headwater.exceptions import AutomationValidationError


def _fields(data: dict) -> str:
    with pytest.raises(AutomationValidationError) as caught:
        parse_automation(data)
    return f"{caught.value.field}|{caught.value}"


def test_unknown_trigger_kind_names_the_field() -> None:
    found = _fields({"name": "a", "trigger": {"type": "metric"}})
    assert found.startswith("trigger.type|") and "event, compound, sequence" in found


def test_bad_glob_names_the_label() -> None:
    found = _fields({"name": "a", "trigger": {"match": {"headwater.resource.id": "run.[abc"}}})
    assert found.startswith("trigger.match.headwater.resource.id|") and "unclosed" in found


def test_negative_window_names_the_nested_field() -> None:
    data = {"name": "a", "trigger": {"triggers": [{"expect": ["x"]}, {"within": -5}]}}
    assert _fields(data).startswith("trigger.triggers[1].within|")


def test_action_missing_its_target_names_the_field() -> None:
    data = {"name": "a", "trigger": {}, "actions": [{"type": "call-webhook"}]}
    assert _fields(data).startswith("actions[0].url|")
    data = {"name": "a", "trigger": {}, "actions": [{"type": "pause-automation"}]}
    assert _fields(data).startswith("actions[0].automation_id|")


def test_unknown_action_kind_and_unknown_field() -> None:
    assert "call-webhook" in _fields({"name": "a", "trigger": {}, "actions": [{"type": "page"}]})
    assert _fields({"name": "a", "trigger": {"bogus": 1}}).startswith("trigger|")


def test_template_syntax_error_is_caught_on_creation() -> None:
    data = {
        "name": "a",
        "trigger": {},
        "actions": [{"type": "call-webhook", "url": "http://x", "payload": "{{ event.id"}],
    }
    assert _fields(data).startswith("actions[0].payload|")


def test_python_construction_validates_too() -> None:
    with pytest.raises(AutomationValidationError, match="within"):
        EventTrigger(within=-1)
    with pytest.raises(AutomationValidationError, match="require"):
        CompoundTrigger(require=3, triggers=[EventTrigger()])
    with pytest.raises(AutomationValidationError, match="block"):
        SendNotification()
    with pytest.raises(AutomationValidationError, match="automation_id"):
        PauseAutomation()


def test_types_are_checked_before_storing() -> None:
    from headwater.automations.model import validate_automation

    bad = Automation(name="a", trigger=EventTrigger(threshold="3"))  # type: ignore[arg-type]
    with pytest.raises(AutomationValidationError) as caught:
        validate_automation(bad)
    assert caught.value.field == "trigger.threshold"


def test_prefect_shaped_values_are_accepted() -> None:
    trigger = EventTrigger(expect={"a", "b"}, within=datetime.timedelta(minutes=2))
    assert trigger.expect == ["a", "b"] and trigger.within == 120.0
    parsed = parse_automation(
        {
            "name": "a",
            "trigger": {"triggers": [{"expect": ["x"]}], "require": "any"},
            "actions": [{"type": "do-nothing"}],
        }
    )
    assert isinstance(parsed.trigger, CompoundTrigger)
    webhook = CallWebhook(url="http://127.0.0.1:1/x", method="post")
    assert webhook.method == "POST" and webhook.type == "call-webhook"


def test_a_file_may_hold_a_list() -> None:
    parsed = parse_automations(
        {"automations": [{"name": "a", "trigger": {}}, {"name": "b", "trigger": {}}]}
    )
    assert [a.name for a in parsed] == ["a", "b"]
    with pytest.raises(AutomationValidationError) as caught:
        parse_automations(
            {"automations": [{"name": "a", "trigger": {}}, {"name": "", "trigger": {}}]}
        )
    assert caught.value.field == "automations[1].name"
