"""The ``headwater`` command: the click group, its sub-commands, and the entry point.

``headwater --help`` must stay fast (Prefect's CLI takes seconds to start), so this module
and the command modules import only click and small headwater modules at the top; the
storage layer, rich and the event loop are imported inside the commands that use them.

Errors: :class:`HeadwaterGroup` catches every expected failure (click's usage errors,
:class:`~headwater.cli.errors.CliError`, headwater's own errors) and prints exactly one
line, ``Error: ...``, on stderr, with exit code 2 for a wrong command line and 1 for a
failure to do the work (see :mod:`headwater.cli.errors`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from headwater.cli.artifacts import artifact
from headwater.cli.automations import automation
from headwater.cli.blocks import block, variable
from headwater.cli.concurrency_limits import concurrency_limit
from headwater.cli.config import config
from headwater.cli.db import db
from headwater.cli.demo import demo
from headwater.cli.deployments import deployment, flow
from headwater.cli.errors import exit_code_for, message_for
from headwater.cli.events import events
from headwater.cli.flow_runs import flow_run
from headwater.cli.server import server
from headwater.cli.stream import stream
from headwater.cli.task_runs import task_run
from headwater.cli.webhooks import webhook

__all__ = ["HeadwaterGroup", "cli", "main"]


class HeadwaterGroup(click.Group):
    """A click group whose failures are one line on stderr, never a traceback or usage dump."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        except Exception as exc:
            code = exit_code_for(exc)
            if code is None:
                raise
            click.echo(message_for(exc), err=True)
            sys.exit(code)
        # Without standalone mode click returns the exit code of ``--help``/``ctx.exit()``,
        # or the command's return value (always None here).
        sys.exit(result if isinstance(result, int) else 0)


@click.group(
    "headwater",
    cls=HeadwaterGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="headwater", prog_name="headwater")
def cli() -> None:
    """headwater: run history, events and settings from the command line.

    Every listing takes --output json for one JSON object per line. Settings come from
    HEADWATER_* environment variables (see `headwater config view`).
    """


cli.add_command(flow_run)
cli.add_command(flow)
cli.add_command(deployment)
cli.add_command(automation)
cli.add_command(task_run)
cli.add_command(events)
events.add_command(stream)
cli.add_command(config)
cli.add_command(db)
cli.add_command(demo)
cli.add_command(server)
cli.add_command(webhook)
cli.add_command(concurrency_limit)
cli.add_command(artifact)
cli.add_command(block)
cli.add_command(variable)


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of the ``headwater`` console script and of ``python -m headwater``."""
    cli.main(args=args, prog_name="headwater")
