"""The current flow run (``prefect.runtime.flow_run``): id, name, flow_name, parameters, ..."""

from headwater.engine.runtime_facts import flow_run_fact as __getattr__  # noqa: F401

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
