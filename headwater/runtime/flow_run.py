"""The current flow run: id, name, flow_name, parameters, tags, run_count, parent ids..."""

from __future__ import annotations

from typing import Any

from headwater.engine.context import flow_run_context

__all__ = [
    "flow_name",
    "flow_version",
    "id",
    "name",
    "parameters",
    "parent_flow_run_id",
    "root_flow_run_id",
    "run_count",
    "scheduled_start_time",
    "tags",
]


def _flow_run() -> Any:
    context = flow_run_context.get()
    return context.flow_run if context is not None else None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def __getattr__(name: str) -> Any:
    run = _flow_run()
    if name == "id":
        return _str(run.id) if run else None
    if name == "name":
        return run.name if run else None
    if name == "flow_name":
        return run.flow_name if run else None
    if name == "flow_version":
        return run.flow_version if run else None
    if name == "parameters":
        return dict(run.parameters) if run else {}
    if name == "tags":
        return list(run.tags) if run else []
    if name == "run_count":
        return run.run_count if run else 0
    if name == "parent_flow_run_id":
        return _str(run.parent_flow_run_id) if run else None
    if name == "root_flow_run_id":
        return _str(run.root_flow_run_id) if run else None
    if name == "scheduled_start_time":
        return run.start_time if run else None
    raise AttributeError(f"headwater.runtime.flow_run has no attribute {name!r}")
