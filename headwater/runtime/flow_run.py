"""The current flow run (``prefect.runtime.flow_run``): id, name, flow_name, parameters, ..."""

from headwater.engine.runtime_facts import FLOW_RUN_FACTS as _FACTS
from headwater.engine.runtime_facts import flow_run_fact as __getattr__  # noqa: F401

__all__ = list(_FACTS)
