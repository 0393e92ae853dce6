"""``headwater config view``: resolved settings, secrets masked."""

from __future__ import annotations

from pathlib import Path

from cli_helpers import Invoke, json_lines

from headwater.settings import SecretValue, temporary_settings


def test_view_shows_resolved_settings_and_masks_secrets(invoke: Invoke, tmp_path: Path) -> None:
    secret = "sk-live-7f3a9c1e"
    with temporary_settings(
        home=tmp_path,
        database_url=None,
        api_key=SecretValue(secret),
        server_api_auth_string=SecretValue("admin:hunter2"),
    ):
        table = invoke("config", "view")
        as_json = invoke("config", "view", "--output", "json")
    assert table.exit_code == 0 and as_json.exit_code == 0
    for output in (table.stdout, as_json.stdout):
        assert secret not in output and "hunter2" not in output
    values = json_lines(as_json.stdout)[0]
    assert values["HEADWATER_API_KEY"] == "********"
    assert values["HEADWATER_SERVER_API_AUTH_STRING"] == "********"
    assert values["HEADWATER_API_AUTH_STRING"] is None
    assert values["HEADWATER_HOME"] == str(tmp_path)
    assert values["database"] == str(tmp_path / "headwater.db")
    assert values["HEADWATER_RETENTION_PERIOD"] == "30d"
    assert "HEADWATER_TASKS_RUNNER_THREAD_POOL_MAX_WORKERS" in values
    assert "HEADWATER_API_KEY" in table.stdout and "********" in table.stdout


def test_view_reports_an_unusable_database_url(invoke: Invoke, tmp_path: Path) -> None:
    with temporary_settings(home=tmp_path, database_url="postgresql://db/headwater"):
        values = json_lines(invoke("config", "view", "-o", "json").stdout)[0]
    assert values["HEADWATER_DATABASE_URL"] == "postgresql://db/headwater"
    assert values["database"].startswith("(unusable:")
