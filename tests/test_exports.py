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
    "headwater.deployments",
    "headwater.schedules",
    "headwater.runtime.deployment",
    "headwater.events.actions",
    "headwater.events.schemas.automations",
    "headwater.events.schemas.events",
    "headwater.events.schemas.deployment_triggers",
    "headwater.client.schemas.objects",
    "headwater.client.schemas.schedules",
    "headwater.utilities.annotations",
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


def _migration_table_paths() -> list[str]:
    """Every ``headwater....`` path the README's migration table names."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = readme.split("## Migrating from Prefect", 1)[1].split("\n## ", 1)[0]
    paths: set[str] = set()
    for line in table.splitlines():
        if not line.startswith("| "):
            continue
        for code in re.findall(r"`([^`]+)`", line):
            if "-" in code or ".resource." in code:
                continue  # a label or an event name, not an import path
            for token in re.findall(r"headwater(?:\.[A-Za-z_][A-Za-z0-9_]*)+", code):
                paths.add(token)
    return sorted(paths)


def test_the_migration_table_names_real_paths() -> None:
    paths = _migration_table_paths()
    assert len(paths) > 15, paths  # the table was read
    broken = []
    for path in paths:
        module_name, found = path, None
        while module_name:
            try:
                found = importlib.import_module(module_name)
                break
            except ModuleNotFoundError:
                module_name = module_name.rpartition(".")[0]
        rest = path[len(module_name) + 1 :].split(".") if path != module_name else []
        value = found
        for part in rest:
            value = getattr(value, part, None)
        if found is None or value is None:
            broken.append(path)
    assert not broken, f"the README's migration table names paths that do not exist: {broken}"


def test_prefect_automation_paths_define_automations_as_prefect_does() -> None:
    from headwater.client.schemas.objects import StateType
    from headwater.events import DeploymentEventTrigger, EventTrigger, RunDeployment
    from headwater.events.actions import ChangeFlowRunState
    from headwater.events.schemas.automations import Automation, Posture
    from headwater.events.schemas.events import ResourceSpecification

    automation = Automation(
        name="prefect-style",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed"},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[ChangeFlowRunState(state=StateType.CANCELLED.value)],
    )
    assert automation.trigger.expect == ["headwater.flow-run.Failed"]
    spec: ResourceSpecification = {"prefect.resource.id": "shop.*"}
    assert EventTrigger(match=spec).match == {"headwater.resource.id": "shop.*"}
    trigger = DeploymentEventTrigger(expect={"file.arrived"}, parameters={"path": "{{ event }}"})
    assert trigger.parameters == {"path": "{{ event }}"}
    assert RunDeployment(deployment_id="01a23f13-9d04-7eba-8a73-b426d5463528").type == (
        "run-deployment"
    )


def test_task_input_hash_keys_on_the_task_and_its_inputs() -> None:
    from headwater import flow, task
    from headwater.tasks import task_input_hash

    calls = []

    @task(cache_key_fn=task_input_hash, persist_result=True)
    def double(x: int) -> int:
        calls.append(x)
        return 2 * x

    @flow
    def twice() -> list[int]:
        return [double(3), double(3), double(4)]

    assert twice() == [6, 6, 8]
    assert calls.count(3) <= 1 and 4 in calls


def test_run_context_and_annotation_paths_as_prefect_code_imports_them() -> None:
    import pytest as _pytest

    from headwater import flow, task
    from headwater.context import get_run_context
    from headwater.exceptions import MissingContextError, PrefectException
    from headwater.utilities.annotations import quote, unmapped

    @task
    def inner() -> str:
        return type(get_run_context()).__name__

    @flow
    def outer() -> tuple[str, str]:
        return type(get_run_context()).__name__, inner()

    assert outer() == ("FlowRunContext", "TaskRunContext")
    with _pytest.raises(MissingContextError):
        get_run_context()
    assert issubclass(MissingContextError, PrefectException)
    assert unmapped([1]).unwrap() == [1] and quote(2).unquote() == 2


def test_disable_run_logger_lets_a_tasks_function_run_outside_a_run() -> None:
    import pytest as _pytest

    from headwater import get_run_logger, task
    from headwater.exceptions import MissingContextError
    from headwater.logging import disable_run_logger

    @task
    def noisy(x: int) -> int:
        get_run_logger().info("called with %s", x)
        return x + 1

    with _pytest.raises(MissingContextError):
        noisy.fn(1)
    with disable_run_logger():
        assert noisy.fn(1) == 2
