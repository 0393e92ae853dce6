"""The current task run (``prefect.runtime.task_run``): id, name, task_name, parameters, ..."""

from headwater.engine.runtime_facts import task_run_fact as __getattr__  # noqa: F401

__all__ = ["id", "name", "parameters", "run_count", "tags", "task_name"]
