"""Task runners: where ``.submit()`` and ``.map()`` run their task runs.

The default runner runs async tasks as coroutines on the flow's own event loop (inside the
flow run's task group, so none outlives the flow) and sync tasks on a thread pool; the run
context (logger, runtime, tags) is copied into the worker threads.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import logging
import os
import threading
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from headwater.engine.asyncutils import run_coro_sync
from headwater.engine.futures import DeferredStart, HeadwaterFuture
from headwater.engine.thread_pool import DaemonThreadPool
from headwater.settings import get_settings

if TYPE_CHECKING:
    import anyio.abc

    from headwater.engine.runs import TaskRun

__all__ = ["FlowRunSite", "SubmittedRun", "TaskRunner", "ThreadPoolTaskRunner"]

_logger = logging.getLogger("headwater.task_runners")

ABANDON_GRACE = 5.0
"""Seconds running task runs get to finish when their flow run is interrupted."""


class SubmittedRun(Protocol):
    """A task run handed to a runner (the task engine's ``TaskRunEngine``)."""

    @property
    def task_run(self) -> TaskRun: ...

    @property
    def isasync(self) -> bool: ...

    def execute_sync(self) -> Any: ...

    def execute_async(self) -> Coroutine[Any, Any, Any]: ...

    def abandon(self, message: str) -> None: ...


class FlowRunSite(Protocol):
    """Where a flow run's async task runs go (its ``FlowRunContext``)."""

    @property
    def loop(self) -> Any: ...  # the flow's asyncio loop, set whenever task_group is

    @property
    def task_group(self) -> anyio.abc.TaskGroup | None: ...

    @property
    def thread_id(self) -> int | None: ...


class TaskRunner:
    """Base class: a task runner starts submitted task runs and waits for them at flow end."""

    def duplicate(self) -> TaskRunner:
        """A fresh runner with the same configuration, for one flow run."""
        raise NotImplementedError

    def submit(self, engine: SubmittedRun, flow_ctx: FlowRunSite) -> HeadwaterFuture[Any]:
        raise NotImplementedError

    def shutdown(self) -> None:
        """Wait for every submitted task run and release the runner's resources."""

    async def shutdown_async(self) -> None:
        """Async form of :meth:`shutdown`: waits without blocking the event loop."""
        self.shutdown()

    def abandon(self, grace: float = ABANDON_GRACE) -> None:
        """The flow run was interrupted (Ctrl-C, SIGTERM, a crash): stop at once.

        Task runs not started yet never start; running ones get ``grace`` seconds to
        finish; every one left is recorded Crashed now, before its flow run's final state,
        and nothing it reports later is recorded.
        """
        self.shutdown()

    def __enter__(self) -> TaskRunner:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        if exc_type is not None and not issubclass(exc_type, Exception):
            self.abandon()  # KeyboardInterrupt, SIGTERM's TerminationSignal, ...
        else:
            self.shutdown()


class ThreadPoolTaskRunner(TaskRunner):
    """Sync tasks on a pool of threads; async tasks on the flow's event loop.

    Args:
        max_workers: thread count; None reads ``HEADWATER_TASKS_RUNNER_THREAD_POOL_MAX_WORKERS``
            and otherwise uses ``min(32, cpus + 4)``.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers
        self._executor: DaemonThreadPool | None = None
        self._lock = threading.Lock()
        # submitted to the pool and not finished: the run, and the pool's handle on it
        self._outstanding: dict[
            HeadwaterFuture[Any], tuple[SubmittedRun, concurrent.futures.Future[Any]]
        ] = {}

    def duplicate(self) -> ThreadPoolTaskRunner:
        return type(self)(self.max_workers)

    def _pool(self) -> DaemonThreadPool:
        executor = self._executor
        if executor is None:
            with self._lock:
                if self._executor is None:
                    workers = (
                        self.max_workers
                        or get_settings().task_runner_max_workers
                        or min(32, (os.cpu_count() or 1) + 4)
                    )
                    self._executor = DaemonThreadPool(workers, thread_name_prefix="headwater-task")
                executor = self._executor
        return executor

    def submit(self, engine: SubmittedRun, flow_ctx: FlowRunSite) -> HeadwaterFuture[Any]:
        if engine.isasync and flow_ctx.task_group is not None:
            future: HeadwaterFuture[Any] = HeadwaterFuture(engine.task_run, flow_ctx.loop)
            start = future._start = DeferredStart(
                lambda: _drive_async_in_thread(engine, future), contextvars.copy_context()
            )
            if threading.get_ident() == flow_ctx.thread_id:
                flow_ctx.task_group.start_soon(_drive_async, engine, future, start)
            else:
                flow_ctx.loop.call_soon_threadsafe(
                    flow_ctx.task_group.start_soon, _drive_async, engine, future, start
                )
            return future
        future = HeadwaterFuture(engine.task_run)
        context = contextvars.copy_context()
        driver = _drive_async_in_thread if engine.isasync else _drive_sync
        outstanding = self._outstanding
        outstanding[future] = (engine, self._pool().submit(context.run, driver, engine, future))
        future.add_done_callback(lambda done: outstanding.pop(done, None))
        return future

    def shutdown(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    async def shutdown_async(self) -> None:
        for future in list(self._outstanding):
            await future.wait_async()
        self.shutdown()

    def abandon(self, grace: float = ABANDON_GRACE) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        executor.shutdown(wait=False, cancel_futures=True)
        left = list(self._outstanding.items())
        deadline = time.monotonic() + grace
        try:
            for _, (_, work) in left:
                if not work.cancelled():
                    try:
                        work.result(timeout=max(0.0, deadline - time.monotonic()))
                    except concurrent.futures.TimeoutError:
                        pass
        finally:  # a second Ctrl-C stops the wait, never the recording
            running = []
            for future, (engine, work) in left:
                if work.cancelled():
                    engine.abandon("Never started: its flow run was interrupted first.")
                elif not work.done():
                    engine.abandon(f"Still running {grace:g} s after its flow run was interrupted.")
                    running.append(engine.task_run.name)
                else:
                    continue
                future._finish(engine.task_run.state)  # type: ignore[arg-type]
            if running:
                _logger.warning(
                    "%d task run(s) still running in threads (%s); recorded Crashed, they "
                    "do not hold up the exit (daemon threads)",
                    len(running),
                    ", ".join(running[:5]),
                )

    def __repr__(self) -> str:
        return f"ThreadPoolTaskRunner(max_workers={self.max_workers})"


def _drive_sync(engine: SubmittedRun, future: HeadwaterFuture[Any]) -> None:
    try:
        engine.execute_sync()
    except BaseException:
        _logger.debug("task run %r was interrupted", engine.task_run.name, exc_info=True)
    finally:
        future._finish(engine.task_run.state)  # type: ignore[arg-type]


def _drive_async_in_thread(engine: SubmittedRun, future: HeadwaterFuture[Any]) -> None:
    try:
        run_coro_sync(engine.execute_async())
    except BaseException:
        _logger.debug("task run %r was interrupted", engine.task_run.name, exc_info=True)
    finally:
        future._finish(engine.task_run.state)  # type: ignore[arg-type]


async def _drive_async(
    engine: SubmittedRun, future: HeadwaterFuture[Any], start: DeferredStart
) -> None:
    if not start.take():
        return  # a blocking result() ran it elsewhere first
    try:
        await engine.execute_async()
    finally:
        future._finish(engine.task_run.state)  # type: ignore[arg-type]
