"""Facts about the current run, readable anywhere (``prefect.runtime`` in Prefect).

``from headwater.runtime import flow_run; flow_run.name``. Outside a run every attribute is
None (``parameters`` is ``{}``, ``tags`` is ``[]``, ``run_count`` is 0): reading them never
raises.
"""

from headwater.runtime import deployment, flow_run, task_run

__all__ = ["deployment", "flow_run", "task_run"]
