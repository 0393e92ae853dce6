"""``headwater webhook create | ls | delete`` against the local database."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import Invoke


def test_create_list_delete_a_static_webhook(home: Path, invoke: Invoke) -> None:
    created = invoke(
        "webhook", "create", "orders", "--event", "order.placed", "--resource-id", "shop.orders",
        "--label", "team=sales", "--require-auth",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "Created webhook 'orders'" in created.output and "/hooks/orders" in created.output
    listed = invoke("webhook", "ls", "--output", "json")
    (hook,) = [json.loads(line) for line in listed.output.splitlines()]
    assert hook["event"] == "order.placed"
    assert hook["resource"] == {"team": "sales", "headwater.resource.id": "shop.orders"}
    assert hook["require_auth"] is True and hook["enabled"] is True
    assert "orders" in invoke("webhook", "ls").output
    deleted = invoke("webhook", "delete", "orders")
    assert deleted.exit_code == 0 and "Deleted webhook 'orders'" in deleted.output
    assert invoke("webhook", "ls", "--output", "json").output == ""


def test_create_a_jinja_webhook_from_a_file(home: Path, invoke: Invoke, tmp_path: Path) -> None:
    template = tmp_path / "hook.j2"
    template.write_text('{"event": "x.{{ method }}", "resource": {"headwater.resource.id": "x"}}')
    result = invoke("webhook", "create", "gh", "--template", str(template), "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["template"] == template.read_text()


def test_mistakes_are_one_line_errors(home: Path, invoke: Invoke, tmp_path: Path) -> None:
    broken = tmp_path / "broken.j2"
    broken.write_text("{% if %}")
    cases = [
        (("webhook", "create", "a"), "needs --event and --resource-id, or --template"),
        (("webhook", "create", "a", "--event", "e"), "needs --event and --resource-id"),
        (("webhook", "create", "a", "--template", str(broken), "--event", "e"), "not both"),
        (("webhook", "create", "a", "--template", str(broken)), "the template does not compile"),
        (("webhook", "create", "bad slug", "--event", "e", "--resource-id", "r"), "not valid"),
        (("webhook", "create", "a", "--event", "e", "--resource-id", "r", "--label", "x"), "KEY="),
        (("webhook", "delete", "nothing"), "no webhook 'nothing'"),
    ]
    for args, message in cases:
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert invoke("webhook", "create", "dup", "--event", "e", "--resource-id", "r").exit_code == 0
    again = invoke("webhook", "create", "dup", "--event", "e", "--resource-id", "r")
    assert again.exit_code == 2 and "already exists" in again.output


def test_server_start_help(invoke: Invoke) -> None:
    result = invoke("server", "start", "--help")
    assert result.exit_code == 0
    assert "--host" in result.output and "--port" in result.output
