"""One-time work done when the first run starts (never at import): logging set-up and the
services that higher layers register (the storage layer registers persistence here, so
the engine can start it without importing it)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from headwater.engine.logging import configure_run_logging

__all__ = ["ensure_started", "register_startup_hook"]

_hooks: list[Callable[[], None]] = []
_started = False
_lock = threading.Lock()


def register_startup_hook(hook: Callable[[], None]) -> None:
    """Run ``hook`` when the first flow or task run starts (at once if one already has)."""
    with _lock:
        _hooks.append(hook)
        run_now = _started
    if run_now:
        hook()


def ensure_started() -> None:
    """Cheap after the first call: one global read."""
    global _started
    if _started:
        return
    with _lock:
        if _started:
            return
        configure_run_logging()
        hooks = list(_hooks)
        _started = True
    for hook in hooks:
        try:
            hook()
        except Exception:
            _started = False
            logging.getLogger("headwater").exception("A start-up hook failed: %r", hook)
            raise


def reset_started() -> None:
    """Forget that runs have started (tests, and a forked child)."""
    global _started
    _started = False
