"""Work done when runs start, never at import: logging set-up once, then the start hooks
that higher layers register (storage registers persistence here, so the engine can start it
without importing it)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from headwater.engine.logging import configure_run_logging

__all__ = ["ensure_started", "halt_runs", "halted", "register_startup_hook"]

_hooks: tuple[Callable[[], None], ...] = ()
halted: BaseException | None = None
"""Why no run may start now (read as ``startup.halted`` on the per-task path), else None."""
_configured = False
_lock = threading.Lock()


def register_startup_hook(hook: Callable[[], None]) -> None:
    """Call ``hook`` whenever a flow run (or a task run outside any flow) starts.

    Hooks run on every such start, so they must be cheap once their work is done; an
    exception from a hook stops the run from starting and reaches the caller.
    """
    global _hooks
    with _lock:
        if hook not in _hooks:
            _hooks = (*_hooks, hook)


def ensure_started() -> None:
    """Configure logging on first use, then run the start hooks."""
    global _configured
    if not _configured:
        with _lock:
            if not _configured:
                configure_run_logging()
                _configured = True
    for hook in _hooks:
        hook()


def halt_runs(reason: BaseException | None) -> None:
    """Make every task run that starts from now on raise ``reason`` (None: let them start).

    A service that runs must not do without calls this: persistence, when the run history
    can no longer be written and ``HEADWATER_PERSISTENCE_REQUIRED`` is true, so a flow fails
    at its next task instead of running all its work unrecorded.
    """
    global halted
    halted = reason
