"""Run context (``prefect.context`` in Prefect)."""

from headwater.engine.context import FlowRunContext, TaskRunContext, tags

__all__ = ["FlowRunContext", "TaskRunContext", "tags"]
