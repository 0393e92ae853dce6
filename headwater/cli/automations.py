"""``headwater automation``: list, inspect, create, pause, resume and delete automations.

Automations are addressed by name (names are unique). ``create --file`` reads YAML
(``.yaml``/``.yml``) or JSON holding one automation or ``automations: [...]``; every
definition is validated before any is stored, so a bad file stores nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from headwater.cli.database import with_database
from headwater.cli.errors import CliError
from headwater.cli.output import console, new_table, output_option, print_json_lines

if TYPE_CHECKING:
    from headwater.automations.model import AutomationDefinition
    from headwater.storage import Database

__all__ = ["automation"]


@click.group("automation")
def automation() -> None:
    """Manage automations: triggers on events, and the actions they run."""


def _summary(item: AutomationDefinition) -> dict[str, Any]:
    trigger = item.trigger
    return {
        "id": str(item.id),
        "name": item.name,
        "enabled": item.enabled,
        "trigger": trigger.__struct_config__.tag,
        "actions": [action.type for action in item.actions],
        "description": item.description,
    }


@automation.command("ls")
@output_option
def ls(output: str) -> None:
    """List every automation, by name."""
    from headwater.automations.store import read_automations

    items = with_database(lambda database: read_automations(database))
    if output == "json":
        print_json_lines(_summary(item) for item in items)
        return
    if not items:
        click.echo("No automations.")
        return
    table = new_table("Name", "Enabled", "Trigger", "Actions", "Id")
    for item in items:
        row = _summary(item)
        table.add_row(
            row["name"],
            "yes" if row["enabled"] else "paused",
            row["trigger"],
            ", ".join(row["actions"]) or "-",
            row["id"],
        )
    console().print(table)


async def _by_name(database: Database, name: str) -> AutomationDefinition:
    from headwater.automations.store import read_automation_by_name

    return await read_automation_by_name(name, database)


@automation.command("inspect")
@click.argument("name")
@output_option
def inspect(name: str, output: str) -> None:
    """Show one automation's whole definition (as JSON)."""
    import msgspec

    item = with_database(lambda database: _by_name(database, name))
    data = msgspec.to_builtins(item)
    if output == "json":
        print_json_lines([data])
    else:
        click.echo(json.dumps(data, indent=2))


def _read_file(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise CliError(f"{path} is not valid YAML: {exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError(f"{path} is not valid JSON: {exc}") from None


@automation.command("create")
@click.option(
    "--file",
    "-f",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="A YAML or JSON file with one automation, or `automations: [...]`.",
)
def create(path: Path) -> None:
    """Create the automations a file defines (all validated first; nothing stored on error)."""
    from headwater.automations.model import parse_automations
    from headwater.automations.store import create_automation

    parsed = parse_automations(_read_file(path))

    async def work(database: Database) -> list[AutomationDefinition]:
        return [await create_automation(item, database) for item in parsed]

    for item in with_database(work):
        click.echo(f"Created automation {item.name!r} ({item.id})")


def _set_enabled(name: str, enabled: bool) -> None:
    from headwater.automations.store import set_enabled

    async def work(database: Database) -> None:
        item = await _by_name(database, name)
        assert item.id is not None
        await set_enabled(item.id, enabled, database)

    with_database(work)
    click.echo(f"{'Resumed' if enabled else 'Paused'} automation {name!r}")


@automation.command("pause")
@click.argument("name")
def pause(name: str) -> None:
    """Disable an automation: it is no longer evaluated."""
    _set_enabled(name, False)


@automation.command("resume")
@click.argument("name")
def resume(name: str) -> None:
    """Enable a paused automation."""
    _set_enabled(name, True)


@automation.command("delete")
@click.argument("name")
def delete(name: str) -> None:
    """Delete an automation and its trigger state."""
    from headwater.automations.store import delete_automation

    async def work(database: Database) -> None:
        item = await _by_name(database, name)
        assert item.id is not None
        await delete_automation(item.id, database)

    with_database(work)
    click.echo(f"Deleted automation {name!r}")
