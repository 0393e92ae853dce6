"""``@flow``: a function turned into an observed run that tasks and subflows report to."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar, overload

from headwater.engine.asyncutils import in_running_loop, run_coro_sync
from headwater.engine.context import flow_run_context
from headwater.engine.flow_definition import FlowDefinition, FlowHook
from headwater.engine.flow_engine import FlowRunEngine
from headwater.engine.serving import serving
from headwater.engine.task_runners import TaskRunner

__all__ = ["Flow", "flow"]

P = ParamSpec("P")
R = TypeVar("R")


class Flow(FlowDefinition[P, R]):
    """A flow: call it like the function it wraps; each call is one flow run.

    See :func:`flow` for the options.
    """

    # -- options --------------------------------------------------------------------------
    def with_options(self, **changes: Any) -> Flow[P, R]:
        """A copy of this flow with some options changed (same function)."""
        options: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "version": self.version,
            "retries": self.retries,
            "retry_delay_seconds": self.retry_delay_seconds,
            "timeout_seconds": self.timeout_seconds,
            "log_prints": self.log_prints,
            "flow_run_name": self.flow_run_name,
            "validate_parameters": self.validate_parameters,
            "task_runner": self.task_runner,
            "on_completion": self.on_completion_hooks,
            "on_failure": self.on_failure_hooks,
            "on_cancellation": self.on_cancellation_hooks,
            "on_crashed": self.on_crashed_hooks,
            "on_running": self.on_running_hooks,
            "persist_result": self.persist_result,
            "result_storage": self.result_storage,
            "result_serializer": self.result_serializer,
            "cache_result_in_memory": self.cache_result_in_memory,
        }
        unknown = set(changes) - set(options)
        if unknown:
            raise TypeError(f"with_options() got unknown option(s): {sorted(unknown)}")
        options.update(changes)
        return Flow(self.fn, **options)

    # -- calling --------------------------------------------------------------------------
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the flow; returns its result, or its final State with ``return_state=True``.

        Raises:
            ParameterTypeError: the arguments do not fit the signature or its type hints.
            Exception: whatever the flow raised, as the original object.
        """
        return_state: bool = kwargs.pop("return_state", False)  # type: ignore[assignment]
        if self.isasync:
            coro = self._call_async(args, kwargs, return_state)
            if flow_run_context.get() is not None and not in_running_loop():
                # an async subflow of a sync flow: run it to completion here
                return run_coro_sync(coro)  # type: ignore[no-any-return]
            return coro  # type: ignore[return-value]  # R is the coroutine type for async fns
        engine = FlowRunEngine(self, args, kwargs)
        engine.execute_sync()
        return engine.outcome(return_state)

    async def _call_async(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], return_state: bool
    ) -> Any:
        engine = FlowRunEngine(self, args, kwargs)
        await engine.execute_async()
        return engine.outcome(return_state)

    # -- deployments ----------------------------------------------------------------------
    def to_deployment(self, name: str | None = None, **options: Any) -> Any:
        """A deployment of this flow (``RunnerDeployment``), to pass to ``serve(...)``.

        Options: ``cron``, ``interval``, ``rrule``, ``schedule``, ``schedules``,
        ``timezone``, ``parameters``, ``tags``, ``description``, ``version``, ``paused``,
        ``concurrency_limit``, ``triggers``, ``enforce_parameter_schema``, ``catchup``.
        """
        return serving("to_deployment")(self, name, **options)

    def serve(
        self,
        name: str | None = None,
        *,
        limit: int | None = None,
        pause_on_shutdown: bool = True,
        print_starting_message: bool = True,
        **options: Any,
    ) -> None:
        """Register a deployment of this flow and run it here until stopped (Ctrl-C).

        Same options as :meth:`to_deployment`; ``global_limit`` is the deployment's
        concurrency limit across processes, ``limit`` the runs this process runs at once.
        """
        deployment = serving("to_deployment")(self, name, **options)
        serving("serve")(
            deployment,
            limit=limit,
            pause_on_shutdown=pause_on_shutdown,
            print_starting_message=print_starting_message,
        )

    async def aserve(
        self,
        name: str | None = None,
        *,
        limit: int | None = None,
        pause_on_shutdown: bool = True,
        print_starting_message: bool = True,
        **options: Any,
    ) -> None:
        """:meth:`serve` for async code."""
        deployment = serving("to_deployment")(self, name, **options)
        await serving("aserve")(
            deployment,
            limit=limit,
            pause_on_shutdown=pause_on_shutdown,
            print_starting_message=print_starting_message,
        )

    def __repr__(self) -> str:
        return f"Flow(name={self.name!r})"


@overload
def flow(fn: Callable[P, R], /) -> Flow[P, R]: ...


@overload
def flow(
    *,
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
) -> Callable[[Callable[P, R]], Flow[P, R]]: ...


def flow(fn: Any = None, /, **options: Any) -> Any:
    """Turn a function (sync or async) into a flow.

    Args:
        name: the flow's name (default: the function's name with ``_`` as ``-``).
        description: defaults to the docstring.
        version: a version string.
        retries: extra attempts after a failure (the run re-enters Running).
        retry_delay_seconds: seconds between attempts.
        timeout_seconds: the run fails as TimedOut after this long.
        log_prints: send ``print()`` in the flow and its tasks to the run logger.
        flow_run_name: a format string over the parameters, or a callable.
        validate_parameters: check and convert arguments against the type hints.
        task_runner: where ``.submit()``/``.map()`` run (default ``ThreadPoolTaskRunner()``).
        on_completion, on_failure, on_cancellation, on_crashed, on_running: hooks
            ``(flow, flow_run, state)``.
        persist_result: write the flow's result (under its run id) and, by default, its
            tasks' results; None inherits (the parent flow's, or
            ``HEADWATER_RESULTS_PERSIST_BY_DEFAULT``).
        result_storage: default result storage of the flow and its tasks (a directory, an
            fsspec URL or a LocalFileSystem/RemoteFileSystem).
        result_serializer: default serializer of the flow and its tasks.
        cache_result_in_memory: keep the flow's value on its state (False: load on demand).
    """
    if fn is None:
        return lambda inner: Flow(inner, **options)
    return Flow(fn, **options)
