"""The ``headwater`` command line: run history, events, settings, maintenance and the demo.

Entry point: :func:`main` (console script ``headwater``, and ``python -m headwater``).
"""

from headwater.cli.app import cli, main

__all__ = ["cli", "main"]
