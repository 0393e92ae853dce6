"""Run logging (``prefect.logging`` in Prefect)."""

from headwater.engine.logging import disable_run_logger, get_logger, get_run_logger

__all__ = ["disable_run_logger", "get_logger", "get_run_logger"]
