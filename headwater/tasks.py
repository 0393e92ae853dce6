"""Tasks (``prefect.tasks`` in Prefect)."""

from headwater.engine.cache_policies import task_input_hash
from headwater.engine.retries import exponential_backoff
from headwater.engine.tasks import Task, task

__all__ = ["Task", "exponential_backoff", "task", "task_input_hash"]
