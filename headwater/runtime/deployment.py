"""The current deployment (``prefect.runtime.deployment``): None outside a deployment's run."""

from headwater.engine.runtime_facts import DEPLOYMENT_FACTS as _FACTS
from headwater.engine.runtime_facts import deployment_fact as __getattr__  # noqa: F401

__all__ = list(_FACTS)
