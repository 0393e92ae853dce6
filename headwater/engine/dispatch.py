"""Prefect's "sync compatible" calls: one name that is sync in sync code, awaitable in async.

``Variable.get``, ``Block.load``, ``create_markdown_artifact``... return their value when
called from sync code and an awaitable when called from async code, as Prefect's
``async_dispatch`` does, so published scripts that ``await Variable.get(...)`` in an async
flow run unchanged. Which one is decided by Prefect's rule: inside a run, whether the
current task or flow is async; outside any run, whether this thread runs an event loop.
"""

from __future__ import annotations

from headwater.engine.asyncutils import in_running_loop
from headwater.engine.context import flow_run_context, task_run_context
from headwater.engine.states import set_async_context_check

__all__ = ["in_async_context"]


def in_async_context() -> bool:
    """True where a sync-compatible call should return an awaitable."""
    task_context = task_run_context.get()
    if task_context is not None:
        return bool(task_context.task.isasync)
    flow_context = flow_run_context.get()
    if flow_context is not None:
        return bool(flow_context.flow.isasync)
    return in_running_loop()


set_async_context_check(in_async_context)  # State.result() follows the same rule
