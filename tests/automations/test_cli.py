"""``headwater automation``: create from YAML/JSON, list, inspect, pause, resume, delete."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from headwater.automations import Automation
from headwater.cli.app import cli

YAML = """
automations:
  - name: on-failure
    description: tell ops
    trigger:
      expect: ["headwater.flow-run.Failed"]
      match_related:
        headwater.resource.role: tag
        headwater.resource.id: headwater.tag.prod
    actions:
      - type: call-webhook
        url: http://127.0.0.1:9/hook
        payload: '{"run": "{{ event.resource.name }}"}'
  - name: stuck
    trigger:
      after: ["headwater.flow-run.Running"]
      expect: ["headwater.flow-run.Completed", "headwater.flow-run.Failed"]
      for_each: ["headwater.resource.id"]
      posture: Proactive
      within: 600
    actions: [{type: cancel-flow-run}]
"""


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_create_list_pause_resume_delete(home: Path) -> None:
    path = home / "automations.yaml"
    path.write_text(YAML)
    code, output = _run("automation", "create", "--file", str(path))
    assert code == 0, output
    assert "on-failure" in output and "stuck" in output
    code, output = _run("automation", "ls", "--output", "json")
    listed = [json.loads(line) for line in output.splitlines()]
    assert [(a["name"], a["enabled"]) for a in listed] == [("on-failure", True), ("stuck", True)]
    assert _run("automation", "pause", "stuck")[0] == 0
    assert not Automation.read(name="stuck").enabled
    assert _run("automation", "resume", "stuck")[0] == 0
    assert Automation.read(name="stuck").enabled
    code, output = _run("automation", "inspect", "stuck")
    assert json.loads(output)["trigger"]["posture"] == "Proactive"
    assert _run("automation", "delete", "stuck")[0] == 0
    code, output = _run("automation", "inspect", "stuck")
    assert code == 2 and "not found" in output  # a name that does not exist: usage error


def test_a_bad_file_stores_nothing_and_names_the_field(home: Path) -> None:
    path = home / "bad.json"
    path.write_text(
        json.dumps(
            {
                "automations": [
                    {"name": "ok", "trigger": {}},
                    {"name": "bad", "trigger": {"within": -1}},
                ]
            }
        )
    )
    code, output = _run("automation", "create", "-f", str(path))
    assert code == 2  # as documented: a bad definition file is the command line's fault
    assert "automations[1].trigger.within" in output and len(output.strip().splitlines()) == 1
    assert _run("automation", "ls")[1].strip() == "No automations."


def test_python_api_round_trip(home: Path) -> None:
    from headwater.automations import DoNothing, EventTrigger
    from headwater.exceptions import AutomationNameTaken, AutomationNotFound

    created = Automation(
        name="api", trigger=EventTrigger(expect=["x"]), actions=[DoNothing()]
    ).create()
    assert created.id is not None
    again = Automation.read(id=created.id)
    assert again == created
    again.description = "changed"
    again.update()
    assert Automation.read(name="api").description == "changed"
    assert again.disable() and not Automation.read(name="api").enabled
    try:
        Automation(name="api", trigger=EventTrigger()).create()
    except AutomationNameTaken:
        pass
    else:
        raise AssertionError("a second automation with the same name was stored")
    assert again.delete()
    assert not again.delete()
    try:
        Automation.read(name="api")
    except AutomationNotFound:
        pass
    else:
        raise AssertionError("read a deleted automation")


def test_an_automation_naming_a_missing_block_is_refused_at_creation(home: Path) -> None:
    path = home / "notify.json"
    action = {"type": "send-notification", "block": "slack-webhook/nope"}
    path.write_text(
        json.dumps({"name": "tell", "trigger": {"expect": ["x.y"]}, "actions": [action]})
    )
    code, output = _run("automation", "create", "-f", str(path))
    assert code == 2
    assert "actions[0].block" in output and "slack-webhook/nope" in output
    assert _run("automation", "ls")[1].strip() == "No automations."
