"""Deployments (Prefect's ``prefect.deployments``): run a stored flow from anywhere.

``run_deployment`` is here; ``flow.serve(...)``, ``flow.to_deployment(...)`` and
``headwater.serve(...)`` register and run deployments; schedules are in
``headwater.schedules``.
"""

from headwater.deployments.run_deployment import arun_deployment, run_deployment

__all__ = ["arun_deployment", "run_deployment"]
