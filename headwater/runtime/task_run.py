"""The current task run: id, name, task_name, parameters, tags, run_count."""

from __future__ import annotations

from typing import Any

from headwater.engine.context import task_run_context

__all__ = ["id", "name", "parameters", "run_count", "tags", "task_name"]


def __getattr__(name: str) -> Any:
    context = task_run_context.get()
    run = context.task_run if context is not None else None
    if name == "id":
        return str(run.id) if run else None
    if name == "name":
        return run.name if run else None
    if name == "task_name":
        return run.task_name if run else None
    if name == "parameters":
        if context is None:
            return {}
        if run.parameters is None:  # type: ignore[union-attr]
            run.parameters = context.bound_parameters()  # type: ignore[union-attr]
        return dict(run.parameters)  # type: ignore[union-attr]
    if name == "tags":
        return list(run.tags) if run else []
    if name == "run_count":
        return run.run_count if run else 0
    raise AttributeError(f"headwater.runtime.task_run has no attribute {name!r}")
