"""The current deployment. Deployments arrive in a later release: every attribute is None."""

from __future__ import annotations

from typing import Any

__all__ = ["flow_run_id", "id", "name", "parameters", "version"]


def __getattr__(name: str) -> Any:
    if name == "parameters":
        return {}
    if name in __all__:
        return None
    raise AttributeError(f"headwater.runtime.deployment has no attribute {name!r}")
