"""Task runners (``prefect.task_runners`` in Prefect)."""

from headwater.engine.task_runners import TaskRunner, ThreadPoolTaskRunner

__all__ = ["TaskRunner", "ThreadPoolTaskRunner"]
