"""Facts about the current run, answered from the run context on each read.

:mod:`headwater.runtime` (Prefect's ``prefect.runtime``) forwards its attribute lookups
here. Outside a run every fact is None (``parameters`` is ``{}``, ``tags`` is ``[]``,
``run_count`` is 0): reading one never raises.
"""

from __future__ import annotations

from typing import Any

from headwater.engine.adoption import deployment_context
from headwater.engine.context import flow_run_context, task_run_context
from headwater.engine.naming import naming

__all__ = [
    "DEPLOYMENT_FACTS",
    "FLOW_RUN_FACTS",
    "TASK_RUN_FACTS",
    "deployment_fact",
    "flow_run_fact",
    "task_run_fact",
    "template_values",
]

FLOW_RUN_FACTS = (
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
)
TASK_RUN_FACTS = ("id", "name", "parameters", "run_count", "tags", "task_name")
DEPLOYMENT_FACTS = ("flow_run_id", "id", "name", "parameters", "version")


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def flow_run_fact(name: str) -> Any:
    """``headwater.runtime.flow_run.<name>``."""
    context = flow_run_context.get()
    run = context.flow_run if context is not None else None
    if name == "id":
        return _str(run.id) if run else None
    if name == "name":
        return run.name if run else None
    if name == "flow_name":
        return run.flow_name if run else None
    if name == "flow_version":
        return run.flow_version if run else None
    if name == "parameters":
        being_named = naming.get()
        if being_named is not None and being_named[0] == "flow-run":
            return dict(being_named[1])
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


def task_run_fact(name: str) -> Any:
    """``headwater.runtime.task_run.<name>``."""
    context = task_run_context.get()
    run = context.task_run if context is not None else None
    if name == "id":
        return str(run.id) if run else None
    if name == "name":
        return run.name if run else None
    if name == "task_name":
        return run.task_name if run else None
    if name == "parameters":
        being_named = naming.get()
        if being_named is not None and being_named[0] == "task-run":
            return dict(being_named[1])
        if context is None or run is None:
            return {}
        if run.parameters is None:
            run.parameters = context.bound_parameters()
        return dict(run.parameters)
    if name == "tags":
        return list(run.tags) if run else []
    if name == "run_count":
        return run.run_count if run else 0
    raise AttributeError(f"headwater.runtime.task_run has no attribute {name!r}")


def deployment_fact(name: str) -> Any:
    """``headwater.runtime.deployment.<name>``: None outside a run of a deployment."""
    facts = deployment_context.get()
    if name == "parameters":
        return {} if facts is None else dict(facts.parameters)
    if name in DEPLOYMENT_FACTS:
        if facts is None:
            return None
        value = getattr(facts, name)
        return str(value) if name in ("id", "flow_run_id") else value
    raise AttributeError(f"headwater.runtime.deployment has no attribute {name!r}")


class _Facts:
    """Attribute access over one family of facts, for ``str.format`` templates."""

    __slots__ = ("_lookup",)

    def __init__(self, lookup: Any) -> None:
        self._lookup = lookup

    def __getattr__(self, name: str) -> Any:
        return self._lookup(name)


def template_values() -> dict[str, Any]:
    """``flow_run``, ``task_run`` and ``deployment`` as a template sees them
    (``"{flow_run.name}/{task_run.task_name}"``)."""
    return {
        "flow_run": _Facts(flow_run_fact),
        "task_run": _Facts(task_run_fact),
        "deployment": _Facts(deployment_fact),
    }
