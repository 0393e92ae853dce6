"""Cache policies (``prefect.cache_policies`` in Prefect): how a task run's cache key is made.

Example:
    ``@task(cache_policy=INPUTS - "debug", cache_expiration=timedelta(hours=1))``
"""

from headwater.engine.cache_policies import (
    DEFAULT,
    FLOW_PARAMETERS,
    INPUTS,
    NO_CACHE,
    NONE,
    RUN_ID,
    TASK_SOURCE,
    CacheKeyFnPolicy,
    CachePolicy,
    CompoundCachePolicy,
    FlowParameters,
    Inputs,
    RunId,
    TaskSource,
)

__all__ = [
    "DEFAULT",
    "FLOW_PARAMETERS",
    "INPUTS",
    "NONE",
    "NO_CACHE",
    "RUN_ID",
    "TASK_SOURCE",
    "CacheKeyFnPolicy",
    "CachePolicy",
    "CompoundCachePolicy",
    "FlowParameters",
    "Inputs",
    "RunId",
    "TaskSource",
]
