"""Run logging (``prefect.logging`` in Prefect)."""

from headwater.engine.logging import get_logger, get_run_logger

__all__ = ["get_logger", "get_run_logger"]
