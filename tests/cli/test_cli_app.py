"""The command as a whole: help everywhere, one-line errors, an unusable database."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from cli_helpers import Invoke, assert_one_line_error

from headwater.cli.app import cli
from headwater.settings import temporary_settings


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            paths += _command_paths(command, (*prefix, name))
        else:
            paths.append((*prefix, name))
    return paths


@pytest.mark.parametrize("path", _command_paths(cli), ids=lambda path: " ".join(path) or "root")
def test_every_command_has_help(invoke: Invoke, path: tuple[str, ...]) -> None:
    result = invoke(*path, "--help")
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: headwater")
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    assert command.help and command.help[:40] in result.stdout


def test_every_listing_has_json_output() -> None:
    listings = [("flow-run", "ls"), ("task-run", "ls"), ("events", "ls"), ("config", "view")]
    for group, name in listings:
        command = cli.commands[group]
        assert isinstance(command, click.Group)
        options = {opt for param in command.commands[name].params for opt in param.opts}
        assert "--output" in options, (group, name)


def test_usage_errors_are_one_line(invoke: Invoke) -> None:
    assert_one_line_error(invoke("flow-run", "ls", "--nope"), 2, "--nope", "flow-run ls --help")
    assert_one_line_error(invoke("flow-run", "ls", "--limit", "x"), 2, "--limit")
    assert_one_line_error(invoke("no-such-command"), 2, "no-such-command")


def test_an_unusable_database_is_one_line_exit_1(invoke: Invoke, tmp_path: Path) -> None:
    database = tmp_path / "headwater.db"
    database.write_bytes(b"this is not a database" * 100)
    with temporary_settings(home=tmp_path, database_url=None):
        for args in (("flow-run", "ls"), ("events", "ls"), ("db", "prune", "--older-than", "1d")):
            assert_one_line_error(invoke(*args), 1, str(database), "not a SQLite database")


def test_a_database_url_that_is_not_sqlite(invoke: Invoke, tmp_path: Path) -> None:
    with temporary_settings(home=tmp_path, database_url="postgresql://db/headwater"):
        assert_one_line_error(invoke("flow-run", "ls"), 1, "postgresql://db/headwater")
