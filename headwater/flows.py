"""Flows (``prefect.flows`` in Prefect)."""

from headwater.engine.flows import Flow, flow

__all__ = ["Flow", "flow"]
