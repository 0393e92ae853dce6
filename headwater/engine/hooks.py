"""Running state hooks: in order, awaited when async, errors logged and never propagated.

Hooks are selected from the run's own transition events (see the engines), run after
the state is set, and cannot change it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from headwater.engine.asyncutils import call_maybe_async, call_maybe_async_sync

__all__ = ["run_hooks_async", "run_hooks_sync"]

Hook = Callable[..., Any]

_logger = logging.getLogger("headwater.hooks")


def _hook_name(hook: Hook) -> str:
    return getattr(hook, "__qualname__", None) or getattr(hook, "__name__", None) or repr(hook)


def run_hooks_sync(
    hooks: Sequence[Hook], args: tuple[Any, ...], state_name: str, logger: Any = None
) -> None:
    log = logger or _logger
    for hook in hooks:
        name = _hook_name(hook)
        log.info("Running hook %r in response to entering state %r", name, state_name)
        try:
            call_maybe_async_sync(hook, *args)
        except Exception:
            log.exception("An error was encountered while running hook %r", name)
        else:
            log.info("Hook %r finished running successfully", name)


async def run_hooks_async(
    hooks: Sequence[Hook], args: tuple[Any, ...], state_name: str, logger: Any = None
) -> None:
    log = logger or _logger
    for hook in hooks:
        name = _hook_name(hook)
        log.info("Running hook %r in response to entering state %r", name, state_name)
        try:
            await call_maybe_async(hook, *args)
        except Exception:
            log.exception("An error was encountered while running hook %r", name)
        else:
            log.info("Hook %r finished running successfully", name)
