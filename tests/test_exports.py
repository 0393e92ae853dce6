"""The public surface: every ``__all__`` is accurate, and Prefect's import paths work."""

from __future__ import annotations

import importlib
import inspect
import types

import pytest

PUBLIC_MODULES = [
    "headwater",
    "headwater.flows",
    "headwater.tasks",
    "headwater.states",
    "headwater.futures",
    "headwater.task_runners",
    "headwater.runtime",
    "headwater.runtime.flow_run",
    "headwater.runtime.task_run",
    "headwater.logging",
    "headwater.events",
    "headwater.server",
    "headwater.automations",
    "headwater.context",
    "headwater.client",
    "headwater.blocks",
    "headwater.blocks.core",
    "headwater.blocks.system",
    "headwater.notifications",
    "headwater.variables",
    "headwater.concurrency",
    "headwater.concurrency.sync",
    "headwater.concurrency.asyncio",
    "headwater.artifacts",
    "headwater.cache_policies",
    "headwater.transactions",
    "headwater.results",
    "headwater.serializers",
    "headwater.filesystems",
    "headwater.locking",
]


def _public_definitions(module: types.ModuleType) -> list[str]:
    """Public functions and classes defined in headwater that ``module`` holds."""
    names = []
    for name, value in vars(module).items():
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        if not (inspect.isfunction(value) or inspect.isclass(value)):
            continue
        if not (getattr(value, "__module__", None) or "").startswith("headwater"):
            continue
        names.append(name)
    return names


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_name_in_all_exists(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert isinstance(module.__all__, list)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing, f"{module_name}.__all__ lists missing names: {missing}"


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_all_has_no_duplicates_or_private_names(module_name: str) -> None:
    exported = importlib.import_module(module_name).__all__
    assert len(exported) == len(set(exported)), f"{module_name}.__all__ repeats a name"
    assert not [name for name in exported if name.startswith("_")]


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_definition_is_in_all(module_name: str) -> None:
    module = importlib.import_module(module_name)
    unlisted = sorted(set(_public_definitions(module)) - set(module.__all__))
    assert not unlisted, f"{module_name} has public names missing from __all__: {unlisted}"


def test_the_check_sees_reexported_definitions() -> None:
    # guard the guard: the facade modules re-export engine objects, and those must count
    import headwater

    assert {"Flow", "Task", "flow", "task", "tags"} <= set(_public_definitions(headwater))


def test_prefect_names_import_from_the_package() -> None:
    from headwater import (
        Flow,
        State,
        Task,
        allow_failure,
        flow,
        get_run_logger,
        quote,
        tags,
        task,
        unmapped,
    )

    def work() -> None:
        pass

    assert isinstance(flow(work), Flow)
    assert isinstance(task(work), Task)
    assert State.__name__ == "State"
    assert callable(get_run_logger) and callable(tags)
    assert unmapped([1]).unwrap() == [1]
    assert allow_failure(1).unwrap() == 1
    assert quote(2).unquote() == 2


def test_prefect_names_import_from_the_submodules() -> None:
    from headwater.engine.futures import HeadwaterFuture
    from headwater.futures import PrefectFuture, as_completed, wait
    from headwater.states import Completed, Failed
    from headwater.task_runners import ThreadPoolTaskRunner
    from headwater.tasks import exponential_backoff

    assert PrefectFuture is HeadwaterFuture
    assert callable(wait) and callable(as_completed)
    assert ThreadPoolTaskRunner(max_workers=2).max_workers == 2
    assert exponential_backoff(backoff_factor=2)(3) == [2, 4, 8]
    assert Completed(data=1).is_completed()
    assert Failed().is_failed()
