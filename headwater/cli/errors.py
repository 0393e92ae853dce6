"""How the ``headwater`` command fails: one line on stderr, and an exit code a script can test.

Exit codes:

- 0: done;
- 1: the command could not do its work (the database cannot be opened, events are
  disabled, a setting holds a bad value);
- 2: the command line itself is wrong (unknown option, unknown id or name, bad JSON, a bad
  time or duration, a definition file that breaks the rules), as click does for usage
  errors.

Expected failures never print a traceback: :func:`report` turns click's exceptions and
headwater's own (:class:`~headwater.exceptions.HeadwaterError`) into a single line. An
unexpected exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import click

from headwater.exceptions import EventError, HeadwaterError, InvalidPageTokenError, SettingsError

__all__ = ["CliError", "CliUsageError", "exit_code_for", "message_for", "one_line"]


class CliError(click.ClickException):
    """Raised when a command cannot do its work for a reason the user can act on (exit 1)."""

    exit_code = 1

    def show(self, file: object = None) -> None:
        click.echo(f"Error: {one_line(self.format_message())}", err=True)


class CliUsageError(CliError):
    """Raised when the command line names something that does not exist or is malformed (exit 2).

    Examples: an unknown run id, an ambiguous id prefix, JSON that does not parse.
    """

    exit_code = 2


def one_line(text: str) -> str:
    """Collapse ``text`` onto one line, so every error is exactly one line of output."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def exit_code_for(exc: BaseException) -> int | None:
    """The exit code for an expected exception, or None when ``exc`` is a bug to show in full.

    headwater's own errors map as follows: bad input is 2 (events that break the schema, a
    page token the database did not issue, and every error that is also a ValueError: a
    definition that breaks the rules, a name or id that does not exist); anything about the
    environment (database, settings, a server) is 1.
    """
    if isinstance(exc, click.ClickException):
        return exc.exit_code
    if isinstance(exc, (EventError, InvalidPageTokenError)):
        return 2
    if isinstance(exc, HeadwaterError) and isinstance(exc, ValueError):
        return 1 if isinstance(exc, SettingsError) else 2
    if isinstance(exc, HeadwaterError):
        return 1
    return None


def message_for(exc: BaseException) -> str:
    """The one-line message for an expected exception (see :func:`exit_code_for`)."""
    if isinstance(exc, click.UsageError):
        text = one_line(exc.format_message())
        if exc.ctx is not None:
            text = f"{text} (see '{exc.ctx.command_path} --help')"
        return f"Error: {text}"
    if isinstance(exc, click.ClickException):
        return f"Error: {one_line(exc.format_message())}"
    return f"Error: {one_line(str(exc))}"
