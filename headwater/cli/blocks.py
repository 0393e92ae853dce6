"""``headwater block`` and ``headwater variable``: saved blocks and variables.

A block is named ``<block-type-slug>/<name>`` (``slack-webhook/ops``). ``inspect`` shows
its fields with every secret field masked; it reads the stored document, so it works for
block types this process has never imported.
"""

from __future__ import annotations

import json
from typing import Any

import click

from headwater.cli.errors import CliError
from headwater.cli.output import console, local_time, new_table, output_option, print_json_lines

__all__ = ["block", "variable"]

MASK = "********"


@click.group("block")
def block() -> None:
    """Saved blocks: list, inspect (secrets masked), delete."""


def _split(name: str) -> tuple[str, str]:
    slug, slash, rest = name.partition("/")
    if not slash or not slug or not rest:
        raise CliError(f"block {name!r}: expected '<block-type-slug>/<name>', e.g. 'secret/db'")
    return slug, rest


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$encrypted"}:
            return MASK
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value


@block.command("ls")
@click.option("--type", "block_type", help="Only blocks of this type slug.")
@output_option
def block_ls(block_type: str | None, output: str) -> None:
    """List saved blocks, by type then name (never their data)."""
    import msgspec

    from headwater.blocks.block import read_block_documents

    items = read_block_documents(block_type)
    if output == "json":
        print_json_lines(msgspec.to_builtins(item) for item in items)
        return
    if not items:
        click.echo("No blocks.")
        return
    table = new_table("Block", "Updated", "Id")
    for item in items:
        table.add_row(f"{item.block_type}/{item.name}", local_time(item.updated), str(item.id))
    console().print(table)


@block.command("inspect")
@click.argument("name")
@output_option
def block_inspect(name: str, output: str) -> None:
    """Show block NAME ('<type>/<name>') with its secret fields masked."""
    from headwater.blocks import store
    from headwater.cli.database import with_database

    slug, document = _split(name)
    row = with_database(lambda database: store.read_document(database, slug, document))
    if row is None:
        raise CliError(f"no block {name!r}; `headwater block ls` lists them")
    data = {
        "id": str(row.id),
        "block_type": slug,
        "name": document,
        "data": _masked(json.loads(row.data)),
    }
    if output == "json":
        print_json_lines([data])
        return
    out = console()
    out.print(f"[bold]{slug}/{document}[/bold]  {row.id}")
    for field, value in data["data"].items():
        out.print(f"  {field}: {json.dumps(value)}", markup=False, highlight=False)


@block.command("delete")
@click.argument("name")
def block_delete(name: str) -> None:
    """Delete block NAME ('<type>/<name>')."""
    from headwater.blocks.block import Block

    _split(name)
    Block.delete(name)
    click.echo(f"Deleted block {name}.")


@click.group("variable")
def variable() -> None:
    """Saved variables: list, get, set, unset."""


@variable.command("ls")
@output_option
def variable_ls(output: str) -> None:
    """List variables, by name."""
    import msgspec

    from headwater.blocks.variable import read_variables

    items = read_variables()
    if output == "json":
        print_json_lines(msgspec.to_builtins(item) for item in items)
        return
    if not items:
        click.echo("No variables.")
        return
    table = new_table("Name", "Value", "Tags")
    for item in items:
        table.add_row(item.name, json.dumps(item.value), ", ".join(item.tags))
    console().print(table)


@variable.command("get")
@click.argument("name")
def variable_get(name: str) -> None:
    """Print variable NAME's value as JSON (exit status 1 if there is none)."""
    from headwater.blocks.variable import Variable

    missing = object()
    value = Variable.get(name, default=missing)
    if value is missing:
        raise CliError(f"no variable {name!r}; `headwater variable ls` lists them")
    click.echo(json.dumps(value))


@variable.command("set")
@click.argument("name")
@click.argument("value")
@click.option("--overwrite", is_flag=True, help="Replace an existing variable.")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
def variable_set(name: str, value: str, overwrite: bool, tags: tuple[str, ...]) -> None:
    """Set variable NAME to VALUE (read as JSON, else kept as a string)."""
    from headwater.blocks.variable import Variable

    try:
        parsed: Any = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    Variable.set(name, parsed, tags=list(tags), overwrite=overwrite)
    click.echo(f"Set variable {name!r}.")


@variable.command("unset")
@click.argument("name")
def variable_unset(name: str) -> None:
    """Delete variable NAME."""
    from headwater.blocks.variable import Variable

    if not Variable.unset(name):
        raise CliError(f"no variable {name!r}; nothing to unset")
    click.echo(f"Unset variable {name!r}.")
