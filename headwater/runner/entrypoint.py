"""Entrypoints: how a flow is named so that another process can load it.

``path/to/file.py:function`` (relative to the deployment's working directory, or
absolute) or a module path, ``package.module:function`` or ``package.module.function``.
A file is loaded under its own module name, never as ``__main__``, so the script that
called ``serve()`` under ``if __name__ == "__main__":`` does not serve again in the run's
process.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

from headwater.engine.flows import Flow
from headwater.exceptions import DeploymentValidationError

__all__ = ["entrypoint_of", "load_flow"]


def entrypoint_of(flow: Flow[..., Any]) -> tuple[str, str]:
    """``(entrypoint, working directory)`` for a flow defined at a module's top level.

    Raises:
        DeploymentValidationError: the flow cannot be found again by name in a new
            process (defined inside a function, or in an interactive session).
    """
    fn = flow.fn
    qualname = getattr(fn, "__qualname__", "")
    if "<locals>" in qualname or not qualname:
        raise DeploymentValidationError(
            f"flow {flow.name!r} is defined inside a function ({qualname}); a deployment's"
            " flow must be defined at the top level of a module so its process can load it"
        )
    module = sys.modules.get(fn.__module__)
    attribute = _attribute_name(module, flow, fn.__name__)
    source = getattr(module, "__file__", None)
    working = Path.cwd()
    if "." in fn.__module__ and module is not None and getattr(module, "__spec__", None):
        # a module of a package: loaded by its module path, so its relative imports work
        return f"{fn.__module__}:{attribute}", str(working)
    if source is None:
        raise DeploymentValidationError(
            f"flow {flow.name!r} comes from an interactive session; put it in a file"
            " to serve or deploy it"
        )
    path = Path(source).resolve()
    try:
        return f"{path.relative_to(working).as_posix()}:{attribute}", str(working)
    except ValueError:
        return f"{path.as_posix()}:{attribute}", str(working)


def _attribute_name(module: Any, flow: Flow[..., Any], default: str) -> str:
    if module is not None:
        for name, value in vars(module).items():
            if value is flow:
                return name
    return default


def load_flow(entrypoint: str, working_directory: str | None = None) -> Flow[..., Any]:
    """The flow an entrypoint names.

    Raises:
        DeploymentValidationError: the file or module cannot be found or imported, the
            name is not in it, or it is not a flow; the message says which.
    """
    base = Path(working_directory) if working_directory else Path.cwd()
    target, colon, attribute = entrypoint.rpartition(":")
    if not colon:
        target, _, attribute = entrypoint.rpartition(".")
    if not target or not attribute:
        raise DeploymentValidationError(
            f"entrypoint {entrypoint!r}: expected 'path/to/file.py:function' or"
            " 'package.module:function'"
        )
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_absolute():
            path = base / path
        if not path.is_file():
            raise DeploymentValidationError(f"entrypoint {entrypoint!r}: no file {path}")
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))
        name = f"headwater_entrypoint_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise DeploymentValidationError(f"entrypoint {entrypoint!r}: cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise DeploymentValidationError(
                f"entrypoint {entrypoint!r}: importing {path} failed: {type(exc).__name__}: {exc}"
            ) from exc
    else:
        if str(base) not in sys.path:
            sys.path.insert(0, str(base))
        try:
            module = importlib.import_module(target)
        except Exception as exc:
            raise DeploymentValidationError(
                f"entrypoint {entrypoint!r}: importing {target} failed: {type(exc).__name__}: {exc}"
            ) from exc
    found = getattr(module, attribute, None)
    if found is None:
        raise DeploymentValidationError(f"entrypoint {entrypoint!r}: {target} has no {attribute!r}")
    if not isinstance(found, Flow):
        kind = "function" if inspect.isfunction(found) else type(found).__name__
        raise DeploymentValidationError(
            f"entrypoint {entrypoint!r}: {attribute!r} is a {kind}, not a flow (decorate it"
            " with @flow)"
        )
    return found
