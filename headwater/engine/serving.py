"""How ``flow.serve()`` and ``flow.to_deployment()`` reach the runner: a seam it fills.

A flow's methods for deployments belong to the ``Flow`` users hold, but deployments, the
scheduler and the launcher sit far above the engine (:mod:`headwater.runner`). The runner
installs its functions here with :func:`install` when headwater is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["install", "serving"]

_functions: dict[str, Callable[..., Any]] = {}


def install(**functions: Callable[..., Any]) -> None:
    """Provide ``to_deployment``, ``serve`` and ``aserve``."""
    _functions.update(functions)


def serving(name: str) -> Callable[..., Any]:
    function = _functions.get(name)
    if function is None:
        raise RuntimeError(f"flow.{name}() needs `import headwater` (the runner is not loaded)")
    return function
