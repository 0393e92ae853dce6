"""A task's definition: its function and options, computed once, with no way to run it.

Everything that does not depend on the call (names, keys, retry delays, hook lists, the
parameter schema, result options) is computed here, at decoration time. Split from
:mod:`headwater.engine.tasks` so that the engine and the run context know what a task is
without importing what calls the engine.
"""

from __future__ import annotations

import datetime
import hashlib
import inspect
from collections.abc import Callable, Iterable
from typing import Any, Generic, ParamSpec, TypeVar

from headwater.engine.naming import render_run_name
from headwater.engine.parameters import ParameterSchema
from headwater.engine.result_options import NOT_SET, resolve_options
from headwater.engine.retries import RetryDelay, resolve_retry_delays
from headwater.engine.states import StateType

__all__ = ["TaskDefinition", "TaskHook"]

P = ParamSpec("P")
R = TypeVar("R")

TaskHook = Callable[..., Any]


class TaskDefinition(Generic[P, R]):
    """What a task is: its function and options, computed once at decoration.

    The task engine, the run context and cache policies deal in definitions;
    :class:`~headwater.engine.tasks.Task` adds calling, ``.submit()`` and ``.map()`` (and
    sits above the engine). See :func:`~headwater.engine.tasks.task` for the options.
    """

    def __init__(
        self,
        fn: Callable[P, R],
        name: str | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        version: str | None = None,
        retries: int | None = None,
        retry_delay_seconds: RetryDelay | None = None,
        retry_jitter_factor: float | None = None,
        retry_condition_fn: Callable[..., Any] | None = None,
        timeout_seconds: float | None = None,
        log_prints: bool | None = None,
        task_run_name: str | Callable[..., str] | None = None,
        on_completion: Iterable[TaskHook] | None = None,
        on_failure: Iterable[TaskHook] | None = None,
        on_running: Iterable[TaskHook] | None = None,
        cache_policy: Any = NOT_SET,
        cache_key_fn: Callable[..., str | None] | None = None,
        cache_expiration: datetime.timedelta | None = None,
        persist_result: bool | None = None,
        result_storage: Any = None,
        result_serializer: Any = None,
        result_storage_key: str | None = None,
        cache_result_in_memory: bool = True,
        refresh_cache: bool | None = None,
        on_commit: Iterable[TaskHook] | None = None,
        on_rollback: Iterable[TaskHook] | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"@task needs a function, got {type(fn).__name__}")
        self.fn = fn
        self.isasync = inspect.iscoroutinefunction(fn)
        self.name: str = name or str(getattr(fn, "__name__", type(fn).__name__))
        self.description = description if description is not None else inspect.getdoc(fn)
        self.tags = frozenset(tags or ())
        self.version = version
        owner = f"task {self.name!r}"
        if retries is not None and (not isinstance(retries, int) or retries < 0):
            raise ValueError(f"{owner}: retries must be a non-negative integer, got {retries!r}")
        self.retries = retries or 0
        self.retry_delay_seconds = retry_delay_seconds
        self.retry_delays = resolve_retry_delays(retry_delay_seconds, self.retries, owner)
        if retry_jitter_factor is not None and retry_jitter_factor < 0:
            raise ValueError(
                f"{owner}: retry_jitter_factor must be >= 0, got {retry_jitter_factor}"
            )
        self.retry_jitter_factor = retry_jitter_factor
        self.retry_condition_fn = retry_condition_fn
        if timeout_seconds is not None and timeout_seconds <= 0:
            raise ValueError(f"{owner}: timeout_seconds must be positive, got {timeout_seconds}")
        self.timeout_seconds = timeout_seconds
        self.log_prints = log_prints
        self.task_run_name = task_run_name
        self.on_completion_hooks = list(on_completion or ())
        self.on_failure_hooks = list(on_failure or ())
        self.on_running_hooks = list(on_running or ())
        self.on_commit_hooks = list(on_commit or ())
        self.on_rollback_hooks = list(on_rollback or ())
        self.has_transaction_hooks = bool(self.on_commit_hooks or self.on_rollback_hooks)
        # the options as given (with_options starts from them), then Prefect's rules applied
        self._result_args: dict[str, Any] = {
            "cache_policy": cache_policy,
            "cache_key_fn": cache_key_fn,
            "cache_expiration": cache_expiration,
            "persist_result": persist_result,
            "result_storage": result_storage,
            "result_serializer": result_serializer,
            "result_storage_key": result_storage_key,
            "cache_result_in_memory": cache_result_in_memory,
            "refresh_cache": refresh_cache,
        }
        self.result_options = resolve_options(owner, **self._result_args)
        self.persist_result: bool | None = self.result_options.persist_result
        self.cache_policy = self.result_options.cache_policy
        self.cache_key_fn = cache_key_fn
        self.cache_expiration = cache_expiration
        self.result_storage = result_storage
        self.result_serializer = result_serializer
        self.result_storage_key = result_storage_key
        self.cache_result_in_memory = cache_result_in_memory
        self.refresh_cache = refresh_cache
        self.parameters = ParameterSchema(fn, owner)
        module = getattr(fn, "__module__", "") or ""
        qualname = getattr(fn, "__qualname__", self.name)
        digest = hashlib.sha1(f"{module}.{qualname}".encode()).hexdigest()[:8]
        self.task_key = f"{qualname}-{digest}"
        self.__doc__ = getattr(fn, "__doc__", None)
        self.__wrapped__ = fn

    # -- hooks ----------------------------------------------------------------------------
    @property
    def has_hooks(self) -> bool:
        return bool(self.on_completion_hooks or self.on_failure_hooks or self.on_running_hooks)

    def hooks_for(self, state_type: StateType) -> list[TaskHook]:
        if state_type is StateType.COMPLETED:
            return self.on_completion_hooks
        if state_type is StateType.FAILED:
            return self.on_failure_hooks
        if state_type is StateType.RUNNING:
            return self.on_running_hooks
        return []

    def on_completion(self, fn: TaskHook) -> TaskHook:
        """Decorator form: ``@my_task.on_completion``."""
        self.on_completion_hooks.append(fn)
        return fn

    def on_failure(self, fn: TaskHook) -> TaskHook:
        self.on_failure_hooks.append(fn)
        return fn

    def on_running(self, fn: TaskHook) -> TaskHook:
        self.on_running_hooks.append(fn)
        return fn

    def on_commit(self, fn: TaskHook) -> TaskHook:
        """Decorator form: ``@my_task.on_commit``; ``fn(txn)`` runs when the run commits."""
        self.on_commit_hooks.append(fn)
        self.has_transaction_hooks = True
        return fn

    def on_rollback(self, fn: TaskHook) -> TaskHook:
        """Decorator form: ``@my_task.on_rollback``; ``fn(txn)`` undoes the run's effects."""
        self.on_rollback_hooks.append(fn)
        self.has_transaction_hooks = True
        return fn

    def render_run_name(self, parameters: dict[str, Any]) -> str:
        assert self.task_run_name is not None
        return render_run_name(
            self.task_run_name, parameters, f"task {self.name!r}", kind="task-run"
        )
