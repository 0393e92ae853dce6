"""Run context (``prefect.context`` in Prefect)."""

from headwater.engine.context import FlowRunContext, TaskRunContext, get_run_context, tags

__all__ = ["FlowRunContext", "TaskRunContext", "get_run_context", "tags"]
