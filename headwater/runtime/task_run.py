"""The current task run (``prefect.runtime.task_run``): id, name, task_name, parameters, ..."""

from headwater.engine.runtime_facts import TASK_RUN_FACTS as _FACTS
from headwater.engine.runtime_facts import task_run_fact as __getattr__  # noqa: F401

__all__ = list(_FACTS)
