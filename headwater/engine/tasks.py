"""``@task``: a function turned into an observed unit of work with retries, timeouts and hooks.

What a task is (its options, computed once at decoration) is
:class:`~headwater.engine.task_definition.TaskDefinition`; this module adds calling it.
"""

from __future__ import annotations

import datetime
import inspect
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar, overload

from headwater.engine.annotations import BaseAnnotation, allow_failure, opaque, quote, unmapped
from headwater.engine.asyncutils import in_running_loop, run_coro_sync
from headwater.engine.context import flow_run_context
from headwater.engine.futures import HeadwaterFuture, HeadwaterFutureList
from headwater.engine.inputs import collect_upstreams, needs_resolution
from headwater.engine.retries import RetryDelay
from headwater.engine.states import State
from headwater.engine.task_definition import TaskDefinition, TaskHook
from headwater.engine.task_engine import TaskRunEngine
from headwater.exceptions import (
    FutureBlockedLoopError,
    MappingLengthMismatch,
    MappingMissingIterable,
)

__all__ = ["Task", "task"]

P = ParamSpec("P")
R = TypeVar("R")

_MISSING: Any = object()


class Task(TaskDefinition[P, R]):
    """A task: call it, ``.submit()`` it or ``.map()`` it inside a flow (or call it alone).

    See :func:`task` for the options.
    """

    # -- options --------------------------------------------------------------------------
    def with_options(self, **changes: Any) -> Task[P, R]:
        """A copy of this task with some options changed (same function)."""
        options: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "tags": self.tags,
            "version": self.version,
            "retries": self.retries,
            "retry_delay_seconds": self.retry_delay_seconds,
            "retry_jitter_factor": self.retry_jitter_factor,
            "retry_condition_fn": self.retry_condition_fn,
            "timeout_seconds": self.timeout_seconds,
            "log_prints": self.log_prints,
            "task_run_name": self.task_run_name,
            "on_completion": self.on_completion_hooks,
            "on_failure": self.on_failure_hooks,
            "on_running": self.on_running_hooks,
            "on_commit": self.on_commit_hooks,
            "on_rollback": self.on_rollback_hooks,
            **self._result_args,
        }
        unknown = set(changes) - set(options)
        if unknown:
            raise TypeError(f"with_options() got unknown option(s): {sorted(unknown)}")
        options.update(changes)
        return Task(self.fn, **options)

    # -- calling --------------------------------------------------------------------------
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the task now, in this thread (or this event loop, for async tasks).

        ``return_state=True`` returns the final State instead of the result; ``wait_for=``
        lists upstream futures to wait on.
        """
        return_state: bool = kwargs.pop("return_state", False)  # type: ignore[assignment]
        wait_for = kwargs.pop("wait_for", None)
        flow_ctx = flow_run_context.get()
        if self.isasync:
            coro = self._call_async(args, kwargs, flow_ctx, return_state, wait_for)
            if flow_ctx is not None and not in_running_loop():
                # an async task inside a sync flow: run it to completion here
                return run_coro_sync(coro)  # type: ignore[no-any-return]
            return coro  # type: ignore[return-value]  # R is the coroutine type for async fns
        if flow_ctx is not None and flow_ctx.task_group is not None:
            self._refuse_blocking_on_loop(args, kwargs, wait_for)
        engine = TaskRunEngine(self, args, kwargs, flow_ctx, wait_for)
        engine.execute_sync()
        return engine.outcome(return_state)

    def _refuse_blocking_on_loop(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], wait_for: Any
    ) -> None:
        """A sync task called on an async flow's loop cannot wait for tasks of that loop."""
        values = (*args, *kwargs.values(), *(wait_for or ()))
        if not needs_resolution(values, {}):
            return
        for upstream in collect_upstreams(values):
            if not upstream.done() and upstream._owner_loop is not None:
                raise FutureBlockedLoopError(
                    f"sync task {self.name!r} was called in an async flow with the future of "
                    f"task run {upstream.task_run.name!r}, which is still running on the same "
                    "event loop; waiting for it here would block that loop forever. Await the "
                    f"future first (`await future`), make {self.name!r} async, or "
                    f"{self.name}.submit(...) it"
                )

    async def _call_async(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        flow_ctx: Any,
        return_state: bool,
        wait_for: Any,
    ) -> Any:
        engine = TaskRunEngine(self, args, kwargs, flow_ctx, wait_for)
        await engine.execute_async()
        return engine.outcome(return_state)

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        """Start the task in the flow's task runner and return a future at once.

        Raises:
            RuntimeError: outside of a flow run.
        """
        return_state = kwargs.pop("return_state", False)
        wait_for = kwargs.pop("wait_for", None)
        flow_ctx = flow_run_context.get()
        if flow_ctx is None:
            raise RuntimeError(
                f"task {self.name!r}.submit() was called outside of a flow run; call the task "
                "directly, or submit it from inside a @flow"
            )
        engine = TaskRunEngine(self, args, kwargs, flow_ctx, wait_for)
        future = flow_ctx.task_runner.submit(engine, flow_ctx)
        if return_state:
            future.wait()
            return future.state
        return future

    def map(self, *args: Any, **kwargs: Any) -> Any:
        """Submit one run per element of the iterable arguments.

        Non-iterable arguments (and ``unmapped(...)`` ones, strings and bytes) are passed
        whole to every run.

        Raises:
            MappingLengthMismatch: iterable arguments of different lengths.
            MappingMissingIterable: no iterable argument at all.
            RuntimeError: outside of a flow run.
        """
        return_state = kwargs.pop("return_state", False)
        wait_for = kwargs.pop("wait_for", None)
        flow_ctx = flow_run_context.get()
        if flow_ctx is None:
            raise RuntimeError(
                f"task {self.name!r}.map() was called outside of a flow run; map it from "
                "inside a @flow"
            )
        parameters = self.parameters.bind(args, kwargs)
        iterables: dict[str, list[Any]] = {}
        static: dict[str, Any] = {}
        for name, value in parameters.items():
            kind = self.parameters.signature.parameters[name].kind
            resolved = _resolve_for_mapping(value)
            if (
                isinstance(resolved, unmapped)
                or kind is inspect.Parameter.VAR_KEYWORD
                or not _is_mappable(resolved)
            ):
                static[name] = resolved.unwrap() if isinstance(resolved, unmapped) else value
            else:
                iterables[name] = _as_list(resolved)
        if not iterables:
            raise MappingMissingIterable(
                f"task {self.name!r}.map() got no iterable argument; pass at least one list "
                "(wrap values meant for every run in unmapped())"
            )
        lengths = {name: len(values) for name, values in iterables.items()}
        if len(set(lengths.values())) > 1:
            raise MappingLengthMismatch(
                f"task {self.name!r}.map() got iterables of different lengths: {lengths}"
            )
        count = next(iter(lengths.values()))
        futures: HeadwaterFutureList[Any] = HeadwaterFutureList()
        runner = flow_ctx.task_runner
        for index in range(count):
            call = dict(static)
            for name, values in iterables.items():
                call[name] = values[index]
            call_args, call_kwargs = self.parameters.to_call(call)
            engine = TaskRunEngine(self, call_args, call_kwargs, flow_ctx, wait_for)
            futures.append(runner.submit(engine, flow_ctx))
        if return_state:
            futures.wait()
            return [future.state for future in futures]
        return futures

    def __repr__(self) -> str:
        return f"Task(name={self.name!r})"

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        # methods decorated with @task bind like functions do
        if instance is None:
            return self
        import functools

        return functools.partial(self, instance)


def _resolve_for_mapping(value: Any) -> Any:
    if isinstance(value, HeadwaterFuture):
        return value.result()
    if isinstance(value, State):
        return value.result_now()
    return value


def _is_mappable(value: Any) -> bool:
    if isinstance(value, (str, bytes, bytearray)) or hasattr(value, "read"):
        return False
    if isinstance(value, (allow_failure, quote, opaque)):
        return _is_mappable(value.unwrap())
    if isinstance(value, BaseAnnotation):
        return False
    try:
        iter(value)
    except TypeError:
        return False
    return True


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, (allow_failure, quote, opaque)):
        wrapper = type(value)
        return [wrapper(item) for item in _as_list(value.unwrap())]
    if isinstance(value, dict):
        return list(value)
    return list(value)


@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(
    *,
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
    cache_policy: Any = ...,
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
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(fn: Any = None, /, **options: Any) -> Any:
    """Turn a function (sync or async) into a task.

    Args:
        name: the task's name (default: the function's name).
        description: defaults to the docstring.
        tags: tags for every run of this task, added to those of ``tags()`` blocks.
        version: a version string.
        retries: extra attempts after a failure.
        retry_delay_seconds: a number, a list (indexed by attempt, the last repeating), or
            a callable such as ``exponential_backoff(backoff_factor=2)``.
        retry_jitter_factor: spreads delays up to ``delay * (1 + factor)``.
        retry_condition_fn: ``(task, task_run, state) -> bool``; False stops retrying.
        timeout_seconds: the run fails as TimedOut after this long.
        log_prints: send ``print()`` to the run logger.
        task_run_name: a format string over the parameters, or a callable.
        on_completion, on_failure, on_running: hooks ``(task, task_run, state)``.
        cache_policy: how the cache key is computed (``headwater.cache_policies``); Prefect's
            DEFAULT (inputs + source + flow run id) applies only when the result is persisted.
        cache_key_fn: ``(TaskRunContext, parameters) -> str | None``; replaces cache_policy.
        cache_expiration: a timedelta after which a cached result no longer counts.
        persist_result: write the result to result storage; None inherits (the flow's, or
            ``HEADWATER_RESULTS_PERSIST_BY_DEFAULT``), and any caching option turns it on.
        result_storage: a directory, an fsspec URL (``s3://bucket/prefix``) or a
            LocalFileSystem/RemoteFileSystem; default inherited from the flow.
        result_serializer: ``"pickle"`` (cloudpickle), ``"json"``, or a Serializer.
        result_storage_key: a template over ``headwater.runtime`` and ``parameters``, e.g.
            ``"report-{parameters[day]}"``; it is the cache key.
        cache_result_in_memory: keep the value on the state (False: load it on demand).
        refresh_cache: recompute and overwrite the cached value.
        on_commit, on_rollback: transaction hooks ``(txn)``.
    """
    if fn is None:
        return lambda inner: Task(inner, **options)
    return Task(fn, **options)
