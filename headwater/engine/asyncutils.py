"""Bridges between sync and async code, so that neither kind of caller is left out.

A sync flow may call an async task, and sync code may need to await an async hook;
both run on a private event loop kept per thread (creating a loop per call would cost
far more than the call). Async callers of sync callables just call them.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

__all__ = [
    "call_maybe_async",
    "call_maybe_async_sync",
    "close_private_loop",
    "in_running_loop",
    "run_coro_sync",
]

T = TypeVar("T")

_local = threading.local()


def in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _private_loop() -> asyncio.AbstractEventLoop:
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _local.loop = loop
        _register_close(loop)
    return loop


def _register_close(loop: asyncio.AbstractEventLoop) -> None:
    # Close the thread's private loop when the thread ends (or at exit for the main thread),
    # so no loop is left open to trip ResourceWarning.
    import weakref

    weakref.finalize(threading.current_thread(), _close_loop, loop)


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    if not loop.is_closed() and not loop.is_running():
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


def close_private_loop() -> None:
    """Close this thread's private loop now, in this thread (a short-lived thread's loop
    would otherwise be closed by a finalizer on whichever thread collects the thread)."""
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is not None:
        _local.loop = None
        _close_loop(loop)


def run_coro_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code in a thread that runs no event loop.

    Raises:
        RuntimeError: called from a thread whose event loop is running (it would block it).
    """
    if in_running_loop():
        coro.close()
        raise RuntimeError(
            "cannot run a coroutine synchronously inside a running event loop; await it instead"
        )
    return _private_loop().run_until_complete(coro)


async def call_maybe_async(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` and await its result when it is awaitable."""
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


def call_maybe_async_sync(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` from sync code; an awaitable result is run on the thread's private loop."""
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        result = run_coro_sync(_await(result))
    return result


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable
