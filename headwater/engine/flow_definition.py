"""A flow's definition: its function and options, checked once, with no way to run it.

Split from :mod:`headwater.engine.flows` so that the run engine and the run context can
know what a flow is without importing what calls the engine.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from typing import Any, Generic, ParamSpec, TypeVar

from headwater.engine.naming import render_run_name
from headwater.engine.parameters import ParameterSchema
from headwater.engine.states import StateType
from headwater.engine.task_runners import TaskRunner, ThreadPoolTaskRunner

__all__ = ["FlowDefinition", "FlowHook"]

P = ParamSpec("P")
R = TypeVar("R")

FlowHook = Callable[..., Any]
_FORBIDDEN_NAME = re.compile(r"[/%&<>]")


class FlowDefinition(Generic[P, R]):
    """What a flow is: its function and options, checked once at decoration.

    The run engine and the run context deal in definitions; :class:`~headwater.engine.flows.Flow`
    adds calling (and sits above the engine). See :func:`~headwater.engine.flows.flow` for
    the options.
    """

    def __init__(
        self,
        fn: Callable[P, R],
        name: str | None = None,
        description: str | None = None,
        version: str | None = None,
        retries: int | None = None,
        retry_delay_seconds: float | None = None,
        timeout_seconds: float | None = None,
        log_prints: bool | None = None,
        flow_run_name: str | Callable[..., str] | None = None,
        validate_parameters: bool = True,
        task_runner: TaskRunner | type[TaskRunner] | None = None,
        on_completion: Iterable[FlowHook] | None = None,
        on_failure: Iterable[FlowHook] | None = None,
        on_cancellation: Iterable[FlowHook] | None = None,
        on_crashed: Iterable[FlowHook] | None = None,
        on_running: Iterable[FlowHook] | None = None,
        persist_result: bool | None = None,
        result_storage: Any = None,
        result_serializer: Any = None,
        cache_result_in_memory: bool = True,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"@flow needs a function, got {type(fn).__name__}")
        self.fn = fn
        self.isasync = inspect.iscoroutinefunction(fn)
        self.name: str = name or getattr(fn, "__name__", type(fn).__name__).replace("_", "-")
        if _FORBIDDEN_NAME.search(self.name):
            raise ValueError(
                f"flow name {self.name!r} contains one of the characters / % & < >, which are "
                "not allowed"
            )
        owner = f"flow {self.name!r}"
        self.description = description if description is not None else inspect.getdoc(fn)
        self.version = version
        if retries is not None and (not isinstance(retries, int) or retries < 0):
            raise ValueError(f"{owner}: retries must be a non-negative integer, got {retries!r}")
        self.retries = retries or 0
        if retry_delay_seconds is not None and (
            not isinstance(retry_delay_seconds, (int, float)) or retry_delay_seconds < 0
        ):
            raise ValueError(
                f"{owner}: retry_delay_seconds must be a non-negative number for flows, "
                f"got {retry_delay_seconds!r}"
            )
        self.retry_delay_seconds = retry_delay_seconds
        if timeout_seconds is not None and timeout_seconds <= 0:
            raise ValueError(f"{owner}: timeout_seconds must be positive, got {timeout_seconds}")
        self.timeout_seconds = timeout_seconds
        self.log_prints = log_prints
        self.flow_run_name = flow_run_name
        self.validate_parameters = validate_parameters
        if isinstance(task_runner, type):
            task_runner = task_runner()
        self.task_runner: TaskRunner = task_runner or ThreadPoolTaskRunner()
        self.on_completion_hooks = list(on_completion or ())
        self.on_failure_hooks = list(on_failure or ())
        self.on_cancellation_hooks = list(on_cancellation or ())
        self.on_crashed_hooks = list(on_crashed or ())
        self.on_running_hooks = list(on_running or ())
        if persist_result is None and (result_storage is not None or result_serializer is not None):
            persist_result = True  # Prefect: choosing where or how to persist means persisting
        self.persist_result = persist_result
        self.result_storage = result_storage
        self.result_serializer = result_serializer
        self.cache_result_in_memory = cache_result_in_memory
        self.parameters = ParameterSchema(fn, owner)
        self.__doc__ = getattr(fn, "__doc__", None)
        self.__wrapped__ = fn

    # -- hooks ----------------------------------------------------------------------------
    @property
    def has_hooks(self) -> bool:
        return bool(
            self.on_completion_hooks
            or self.on_failure_hooks
            or self.on_cancellation_hooks
            or self.on_crashed_hooks
            or self.on_running_hooks
        )

    def hooks_for(self, state_type: StateType) -> list[FlowHook]:
        return {
            StateType.COMPLETED: self.on_completion_hooks,
            StateType.FAILED: self.on_failure_hooks,
            StateType.CRASHED: self.on_crashed_hooks,
            StateType.CANCELLING: self.on_cancellation_hooks,
            StateType.RUNNING: self.on_running_hooks,
        }.get(state_type, [])

    def on_completion(self, fn: FlowHook) -> FlowHook:
        """Decorator form: ``@my_flow.on_completion``."""
        self.on_completion_hooks.append(fn)
        return fn

    def on_failure(self, fn: FlowHook) -> FlowHook:
        self.on_failure_hooks.append(fn)
        return fn

    def on_cancellation(self, fn: FlowHook) -> FlowHook:
        self.on_cancellation_hooks.append(fn)
        return fn

    def on_crashed(self, fn: FlowHook) -> FlowHook:
        self.on_crashed_hooks.append(fn)
        return fn

    def on_running(self, fn: FlowHook) -> FlowHook:
        self.on_running_hooks.append(fn)
        return fn

    def render_run_name(self, parameters: dict[str, Any]) -> str:
        assert self.flow_run_name is not None
        return render_run_name(self.flow_run_name, parameters, f"flow {self.name!r}")
