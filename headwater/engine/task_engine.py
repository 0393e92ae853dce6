"""The task run engine: one set of transition decisions, driven by a sync and an async loop.

``TaskRunEngine`` holds every decision (which state comes next, whether to retry, which
hooks the new state calls for) as plain synchronous code. ``execute_sync`` and
``execute_async`` differ only in how they wait: for upstreams, retry delays, timeouts and
async hooks. This is the per-task hot path: it does no work a run does not ask for (no
binding without a name template, no hook lookup without hooks, no timeout machinery
without a timeout).
"""

from __future__ import annotations

import datetime
import itertools
import logging
import time
from typing import TYPE_CHECKING, Any

import anyio

from headwater.engine import control, inputs, startup, task_slots
from headwater.engine.asyncutils import call_maybe_async, call_maybe_async_sync
from headwater.engine.context import (
    FlowRunContext,
    TaskRunContext,
    current_tags,
    task_run_context,
)
from headwater.engine.control import TERMINATED, CancellationInterrupt
from headwater.engine.hooks import run_hooks_async, run_hooks_sync
from headwater.engine.logging import enable_log_prints, get_run_logger, reset_log_prints
from headwater.engine.results import get_default_persist_setting
from headwater.engine.retries import jittered, retry_delay
from headwater.engine.runs import TaskRun, seal, set_state
from headwater.engine.states import (
    AwaitingRetry,
    Cancelled,
    Completed,
    Crashed,
    Failed,
    Pending,
    Retrying,
    Running,
    State,
    StateType,
    _named,
)
from headwater.engine.task_transaction import TaskTransaction
from headwater.engine.timeouts import SyncDeadline, TimeoutInterrupt
from headwater.engine.transactions import current_transaction
from headwater.engine.transitions import TransitionRecord
from headwater.events.bus import get_bus
from headwater.exceptions import TaskRunTimeoutError

if TYPE_CHECKING:
    from headwater.engine.task_definition import TaskDefinition

__all__ = ["TaskRunEngine"]

_logger = logging.getLogger("headwater.task_engine")
_standalone_index = itertools.count()


class TaskRunEngine:
    """One task run from Pending to its final state."""

    __slots__ = (
        "_pending_hooks",
        "args",
        "flow_ctx",
        "kwargs",
        "retries_done",
        "returned_state",
        "task",
        "task_run",
        "txn",
        "wait_for",
        "watch",
    )

    def __init__(
        self,
        task: TaskDefinition[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        flow_ctx: FlowRunContext | None,
        wait_for: Any = None,
    ) -> None:
        if startup.halted is not None:
            raise startup.halted  # nothing could record this run (see startup.halt_runs)
        self.task = task
        self.args = args
        self.kwargs = kwargs
        self.wait_for = wait_for
        self.flow_ctx = flow_ctx
        if flow_ctx is not None:
            index = flow_ctx.next_task_index(task.task_key)
            flow_run = flow_ctx.flow_run
        else:
            startup.ensure_started()  # a task run outside any flow is a run of its own
            index = next(_standalone_index)
            flow_run = None
        context_tags = current_tags()
        tags = task.tags | context_tags if context_tags else task.tags
        parameters = None
        if task.task_run_name is not None:
            parameters = task.parameters.bind(args, kwargs)
            name = task.render_run_name(parameters)
        else:
            name = f"{task.name}-{index}"
        self.task_run = TaskRun(
            task.task_key, task.name, name, tuple(tags), flow_run, parameters=parameters
        )
        self.returned_state: State[Any] | None = None
        self.retries_done = 0
        self._pending_hooks: list[tuple[Any, State[Any]]] = []
        self.watch = get_bus().watch(self.task_run.identity.resource_id) if task.has_hooks else None
        # a transaction only for runs that use one (persisted result, commit/rollback hooks, an
        # open transaction around the call): a plain task pays three attribute reads here
        persist = task.persist_result
        if persist is None:
            persist = (
                flow_ctx.persist_result if flow_ctx is not None else get_default_persist_setting()
            )
        self.txn = (
            TaskTransaction(self, persist)
            if persist or task.has_transaction_hooks or current_transaction.get() is not None
            else None
        )
        self.transition(Pending())

    @property
    def isasync(self) -> bool:
        return self.task.isasync

    # -- decisions (shared by both drivers) -------------------------------------------------
    def transition(self, state: State[Any]) -> None:
        """Set the state; if the task has hooks, collect those its own event calls for."""
        set_state(self.task_run, state)
        watch = self.watch
        if watch is not None:
            for record in watch.drain():
                if type(record) is not TransitionRecord:
                    continue  # someone else's event about this run: not a transition
                hooks = self.task.hooks_for(record.state_type)
                if hooks:
                    self._pending_hooks.append((hooks, self.task_run.state))  # type: ignore[arg-type]

    def take_hooks(self) -> list[tuple[Any, State[Any]]]:
        pending, self._pending_hooks = self._pending_hooks, []
        return pending

    def unresolved_inputs(self) -> list[Any]:
        """Upstream futures to wait for before the task may run."""
        found = []
        if inputs.needs_resolution(self.args, self.kwargs):
            found = inputs.collect_upstreams((*self.args, *self.kwargs.values()))
        if self.wait_for:
            found.extend(inputs.collect_upstreams(self.wait_for))
        return found

    def resolve_inputs(self) -> bool:
        """Substitute upstream results; on an upstream that did not complete, end NotReady."""
        try:
            if self.wait_for:
                inputs.check_wait_for(self.wait_for)
            if inputs.needs_resolution(self.args, self.kwargs):
                self.args = tuple(inputs.resolve(arg) for arg in self.args)
                self.kwargs = {key: inputs.resolve(value) for key, value in self.kwargs.items()}
        except inputs.NotReadyUpstream as upstream:
            self.transition(
                _named(
                    StateType.PENDING,
                    "NotReady",
                    message=f"Upstream {upstream.description} did not reach a 'COMPLETED' state.",
                )
            )
            return False
        return True

    def begin_attempt(self) -> None:
        if self.task_run.run_count == 0:
            self.transition(Running())
        else:
            self.returned_state = None  # a state an earlier attempt returned is not the result
            self.transition(Retrying())

    def context(self) -> TaskRunContext:
        task = self.task
        log_prints = task.log_prints
        if log_prints is None:
            log_prints = self.flow_ctx.log_prints if self.flow_ctx is not None else False
        return TaskRunContext(task, self.task_run, log_prints, self.args, self.kwargs)

    def succeeded(self, value: Any) -> State[Any] | None:
        """Record a return value; a returned Failed state comes back as a failure candidate."""
        if isinstance(value, State):
            self.returned_state = value
            if value.type is StateType.FAILED:
                return value.copy()
            self.transition(value.copy())
            return None
        txn = self.txn
        self.transition(Completed(data=value) if txn is None else txn.completed_state(value))
        return None

    @staticmethod
    def raised(exc: BaseException) -> State[Any]:
        message = f"Task run encountered an exception: {type(exc).__name__}: {exc}"
        return Failed(data=exc, message=message)

    def timed_out(self) -> State[Any]:
        seconds = self.task.timeout_seconds
        error = TaskRunTimeoutError(f"Task run exceeded timeout of {seconds} second(s)")
        return _named(StateType.FAILED, "TimedOut", data=error, message=str(error))

    def can_retry(self) -> bool:
        return self.retries_done < self.task.retries

    def settle(self, failure: State[Any], retry_allowed: bool) -> float | None:
        """Either schedule a retry (returning its delay) or make ``failure`` final."""
        if retry_allowed and self.can_retry():
            return self._schedule_retry(failure)
        self.transition(failure)
        return None

    def crashed(self, exc: BaseException) -> None:
        live_cancel = self.flow_ctx is not None and control.is_cancelling(self.flow_ctx.flow_run.id)
        if isinstance(exc, CancellationInterrupt) or live_cancel:
            self.transition(Cancelled(message="The flow run was cancelled"))
            return
        if control.terminating or isinstance(exc, control.TerminationSignal):
            message = TERMINATED
        else:
            message = f"Execution was interrupted by {type(exc).__name__}"
        self.transition(Crashed(data=exc, message=message))

    def abandon(self, message: str) -> None:
        """Its flow run ends without it (interrupted): record it Crashed, and nothing after."""
        seal(self.task_run, Crashed(message=message))

    def _condition_failed(self) -> bool:
        _logger.exception(
            "retry_condition_fn of task %r raised; the task run will not be retried",
            self.task.name,
        )
        return False

    def retry_condition_sync(self, failure: State[Any]) -> bool:
        condition = self.task.retry_condition_fn
        if condition is None or not self.can_retry():
            return True
        try:
            return bool(call_maybe_async_sync(condition, self.task, self.task_run, failure))
        except Exception:
            return self._condition_failed()

    async def retry_condition_async(self, failure: State[Any]) -> bool:
        condition = self.task.retry_condition_fn
        if condition is None or not self.can_retry():
            return True
        try:
            return bool(await call_maybe_async(condition, self.task, self.task_run, failure))
        except Exception:
            return self._condition_failed()

    def _schedule_retry(self, state: State[Any]) -> float:
        task = self.task
        attempt = self.retries_done
        self.retries_done += 1
        delay = jittered(retry_delay(task.retry_delays, attempt), task.retry_jitter_factor)
        logger = get_run_logger(TaskRunContext(task, self.task_run, False))
        logger.info(
            "%s; retry %d/%d will start %s",
            state.message or state.name,
            attempt + 1,
            task.retries,
            f"in {delay:g} second(s)" if delay else "immediately",
        )
        if delay > 0:
            when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=delay)
            self.transition(AwaitingRetry(scheduled_time=when, message=state.message))
        return delay

    def outcome(self, return_state: bool) -> Any:
        state = self.task_run.state
        assert state is not None
        if return_state:
            return state
        if self.returned_state is not None and not state.is_failed():
            return self.returned_state
        return state.result_now()

    # -- drivers -----------------------------------------------------------------------------
    def execute_sync(self) -> State[Any]:
        """Run the task to its final state in this thread."""
        try:
            upstream = self.unresolved_inputs()
            for future in upstream:
                future.wait()
            if not self.resolve_inputs():
                return self._finish_sync()
            if self.txn is not None and self.txn.enter_sync():  # a cache hit: no need to run
                return self._finish_sync()
            task = self.task
            fn = task.fn
            timeout = task.timeout_seconds
            while True:
                with task_slots.acquire(self.task_run):  # tag concurrency: one slot per limited tag
                    self.begin_attempt()
                    self._run_hooks_sync()
                    token = task_run_context.set(self.context())
                    prints = enable_log_prints(task_run_context.get().log_prints)  # type: ignore[union-attr]
                    failure: State[Any] | None
                    deadline = None if timeout is None else SyncDeadline(timeout)
                    try:
                        if deadline is None:
                            value = fn(*self.args, **self.kwargs)
                        else:
                            with deadline:
                                value = fn(*self.args, **self.kwargs)
                    except TimeoutInterrupt:
                        if deadline is None or not deadline.fired:
                            raise  # an enclosing flow's deadline, not this task's
                        failure = self.timed_out()
                    except Exception as exc:
                        failure = self.raised(exc)
                    else:
                        failure = self.succeeded(value)
                    finally:
                        reset_log_prints(prints)
                        task_run_context.reset(token)
                delay = None
                if failure is not None:
                    delay = self.settle(failure, self.retry_condition_sync(failure))
                self._run_hooks_sync()
                if delay is None:
                    break
                if delay > 0:
                    time.sleep(delay)
        except BaseException as exc:
            if not (self.task_run.state and self.task_run.state.is_final()):
                self.crashed(exc)
                self._run_hooks_sync()
            if self.txn is not None:
                self.txn.exit_sync()  # rolls back
            raise
        return self._finish_sync()

    async def execute_async(self) -> State[Any]:
        """Run the (async or sync) task to its final state on the running loop."""
        try:
            for future in self.unresolved_inputs():
                await future.wait_async()
            if not self.resolve_inputs():
                return await self._finish_async()
            if self.txn is not None and await self.txn.enter_async():  # a cache hit
                return await self._finish_async()
            task = self.task
            fn = task.fn
            timeout = task.timeout_seconds
            is_async = task.isasync
            while True:
                async with task_slots.acquire(self.task_run):  # tag concurrency
                    self.begin_attempt()
                    if self._pending_hooks:
                        await self._run_hooks_async()
                    token = task_run_context.set(self.context())
                    prints = enable_log_prints(task_run_context.get().log_prints)  # type: ignore[union-attr]
                    timed_out = False
                    try:
                        if timeout is None:
                            value = (
                                await fn(*self.args, **self.kwargs)
                                if is_async
                                else fn(*self.args, **self.kwargs)
                            )
                        else:
                            with anyio.move_on_after(timeout) as scope:
                                value = (
                                    await fn(*self.args, **self.kwargs)
                                    if is_async
                                    else fn(*self.args, **self.kwargs)
                                )
                            timed_out = scope.cancelled_caught
                    except Exception as exc:
                        failure: State[Any] | None = self.raised(exc)
                    else:
                        failure = self.timed_out() if timed_out else self.succeeded(value)
                    finally:
                        reset_log_prints(prints)
                        task_run_context.reset(token)
                delay = None
                if failure is not None:
                    delay = self.settle(failure, await self.retry_condition_async(failure))
                if self._pending_hooks:
                    await self._run_hooks_async()
                if delay is None:
                    break
                if delay > 0:
                    await anyio.sleep(delay)
        except BaseException as exc:
            if not (self.task_run.state and self.task_run.state.is_final()):
                self.crashed(exc)
                with anyio.CancelScope(shield=True):
                    await self._run_hooks_async()
            if self.txn is not None:
                with anyio.CancelScope(shield=True):
                    await self.txn.exit_async()  # rolls back
            raise
        return await self._finish_async()

    def _finish_sync(self) -> State[Any]:
        if self.txn is not None:
            self.txn.exit_sync()  # commit (or hand over to the parent), or roll back
        self._run_hooks_sync()
        if self.watch is not None:
            self.watch.close()
        return self.task_run.state  # type: ignore[return-value]

    async def _finish_async(self) -> State[Any]:
        if self.txn is not None:
            await self.txn.exit_async()
        if self._pending_hooks:
            await self._run_hooks_async()
        if self.watch is not None:
            self.watch.close()
        return self.task_run.state  # type: ignore[return-value]

    def _run_hooks_sync(self) -> None:
        if not self._pending_hooks:
            return
        logger = get_run_logger(TaskRunContext(self.task, self.task_run, False))
        for hooks, state in self.take_hooks():
            run_hooks_sync(hooks, (self.task, self.task_run, state), state.name, logger)

    async def _run_hooks_async(self) -> None:
        logger = get_run_logger(TaskRunContext(self.task, self.task_run, False))
        for hooks, state in self.take_hooks():
            await run_hooks_async(hooks, (self.task, self.task_run, state), state.name, logger)
