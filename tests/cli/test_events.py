"""``headwater events``: ls with EventFilter options, emit (then find it), bad input."""

from __future__ import annotations

import datetime
from pathlib import Path

from cli_helpers import History, Invoke, assert_one_line_error, json_lines


def names(invoke: Invoke, *args: str) -> list[str]:
    result = invoke("events", "ls", "-o", "json", "--limit", "500", *args)
    assert result.exit_code == 0, result.stderr
    return [row["event"] for row in json_lines(result.stdout)]


def test_ls_filters_like_event_filter(invoke: Invoke, history: History) -> None:
    run = f"headwater.flow-run.{history.failed}"
    assert names(invoke, "--resource-id", run, "--order", "asc") == [
        "headwater.flow-run.Pending",
        "headwater.flow-run.Running",
        "headwater.flow-run.Failed",
    ]
    assert names(invoke, "--event", "headwater.flow-run.Failed") == ["headwater.flow-run.Failed"]
    assert set(names(invoke, "--event-prefix", "headwater.flow-run.")) == {
        "headwater.flow-run.Pending",
        "headwater.flow-run.Running",
        "headwater.flow-run.Completed",
        "headwater.flow-run.Failed",
    }
    # task-run events of one flow run are related to it; the flow run's own are not
    related = names(invoke, "--related-id", f"headwater.flow-run.{history.tagged}")
    assert len(related) == 9 and all(name.startswith("headwater.task-run.") for name in related)
    prefixed = names(invoke, "--resource-id-prefix", "headwater.task-run.")
    assert len(prefixed) == 15
    assert names(invoke, "--since", "1h", "--resource-id", run) != []
    assert names(invoke, "--until", "1h") == []
    assert len(names(invoke, "--limit", "500")) == 9 + 15


def test_ls_order_and_limit(invoke: Invoke, history: History) -> None:
    newest = json_lines(invoke("events", "ls", "-o", "json", "-n", "1").stdout)
    oldest = json_lines(invoke("events", "ls", "-o", "json", "-n", "1", "--order", "ASC").stdout)
    assert newest[0]["event"] == "headwater.flow-run.Failed"
    assert oldest[0]["event"] == "headwater.flow-run.Pending"
    assert oldest[0]["resource"]["headwater.resource.id"] == f"headwater.flow-run.{history.tagged}"
    table = invoke("events", "ls", "-n", "3")
    assert table.exit_code == 0 and "headwater.flow-run.Failed" in table.stdout


def test_emit_then_ls_finds_it(invoke: Invoke, home: Path) -> None:
    result = invoke(
        "events",
        "emit",
        "shop.order.placed",
        "--resource-id",
        "shop.order.42",
        "--payload",
        '{"total": 12.5, "items": ["tea"]}',
        "--related",
        '{"headwater.resource.id": "shop.customer.7", "headwater.resource.role": "customer"}',
    )
    assert result.exit_code == 0, result.stderr
    prefix = "Successfully emitted event 'shop.order.placed' with ID "
    assert result.stdout.startswith(prefix)
    event_id = result.stdout.strip().removeprefix(prefix)

    found = json_lines(invoke("events", "ls", "-o", "json", "--event", "shop.order.placed").stdout)
    assert [event["id"] for event in found] == [event_id]
    assert found[0]["payload"] == {"total": 12.5, "items": ["tea"]}
    assert found[0]["resource"]["headwater.resource.id"] == "shop.order.42"
    by_related = json_lines(
        invoke("events", "ls", "-o", "json", "--related-id", "shop.customer.7").stdout
    )
    assert [event["id"] for event in by_related] == [event_id]


def test_emit_with_resource_json_and_old_occurred(invoke: Invoke, home: Path) -> None:
    result = invoke(
        "events",
        "emit",
        "sensor.read",
        "--resource",
        '{"headwater.resource.id": "sensor.1", "site": "north"}',
        "--occurred",
        "3d",
    )
    assert result.exit_code == 0, result.stderr
    event = json_lines(invoke("events", "ls", "-o", "json", "--resource-id", "sensor.1").stdout)[0]
    assert event["resource"]["site"] == "north"
    occurred = datetime.datetime.fromisoformat(event["occurred"].replace("Z", "+00:00"))
    age = datetime.datetime.now(datetime.timezone.utc) - occurred
    assert datetime.timedelta(days=3) <= age < datetime.timedelta(days=3, minutes=1)
    assert names(invoke, "--since", "1d", "--resource-id", "sensor.1") == []
    assert names(invoke, "--since", "4d", "--until", "2d") == ["sensor.read"]


def test_emit_bad_input_is_one_line_exit_2(invoke: Invoke, home: Path) -> None:
    assert_one_line_error(
        invoke("events", "emit", "x", "--resource-id", "r", "--payload", "{nope"),
        2,
        "--payload",
        "not valid JSON",
    )
    assert_one_line_error(
        invoke("events", "emit", "x", "--resource-id", "r", "--payload", "[1, 2]"),
        2,
        "--payload",
        "expected a JSON object",
    )
    assert_one_line_error(
        invoke("events", "emit", "x", "--resource", '{"headwater.resource.id": 5}'),
        2,
        "--resource",
    )
    assert_one_line_error(
        invoke("events", "emit", "x", "--resource-id", "r", "--related", '{"a": "b"'),
        2,
        "--related",
    )
    assert_one_line_error(invoke("events", "emit", "x"), 2, "--resource-id")
    # a related resource without a role breaks the event schema
    assert_one_line_error(
        invoke("events", "emit", "x", "--resource-id", "r", "--related", '{"a": "b"}'), 2
    )
    assert names(invoke, "--event", "x") == []


def test_ls_bad_filters_are_one_line_exit_2(invoke: Invoke, home: Path) -> None:
    assert_one_line_error(invoke("events", "ls", "--since", "soon"), 2, "--since", "'soon'")
    assert_one_line_error(invoke("events", "ls", "--until", "7x"), 2, "--until")
    assert_one_line_error(
        invoke("events", "ls", "--since", "1h", "--until", "2h"), 2, "--since", "after"
    )
    assert_one_line_error(invoke("events", "ls", "--order", "up"), 2, "--order")
    assert_one_line_error(invoke("events", "ls", "--limit", "0"), 2, "--limit")
