"""The flow run engine: shared transition decisions, a sync driver and an async driver.

A flow run starts Pending, validates its parameters, enters Running (again on each retry),
and ends in the state Prefect's final-state rules give. Before the call returns, the
run's hooks have finished (rule 4) and its terminal event has been processed by every
lossless consumer, i.e. committed by persistence (rule 5).
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import anyio

from headwater.engine import control
from headwater.engine.adoption import Adoption
from headwater.engine.context import FlowRunContext, current_tags, flow_run_context
from headwater.engine.control import TERMINATED, CancellationInterrupt
from headwater.engine.futures import resolve_futures_to_states
from headwater.engine.hooks import run_hooks_async, run_hooks_sync
from headwater.engine.logging import enable_log_prints, get_run_logger, reset_log_prints
from headwater.engine.naming import generate_slug
from headwater.engine.runs import FlowRun, TaskRun, set_state
from headwater.engine.startup import ensure_started
from headwater.engine.states import (
    AwaitingRetry,
    Cancelled,
    Cancelling,
    Crashed,
    Failed,
    Pending,
    Running,
    State,
    StateType,
    _named,
    return_value_to_state,
)
from headwater.engine.task_transaction import flow_persists, flow_store, persist_flow_result
from headwater.engine.timeouts import SyncDeadline, TimeoutInterrupt, withdraw_interrupt
from headwater.engine.transitions import TransitionRecord
from headwater.events.bus import get_bus
from headwater.exceptions import FailedRun, FlowRunTimeoutError, ParameterTypeError

if TYPE_CHECKING:
    from headwater.engine.flow_definition import FlowDefinition

__all__ = ["FlowRunEngine"]

_logger = logging.getLogger("headwater.flow_engine")
DURABILITY_TIMEOUT = 30.0


class FlowRunEngine:
    """One flow run from Pending to its final state."""

    def __init__(
        self,
        flow: FlowDefinition[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        adoption: Adoption | None = None,
    ):
        ensure_started()
        self.flow = flow
        self.parent = flow_run_context.get()
        parameters = flow.parameters.bind(args, kwargs)  # a binding error raises before any run
        tags = current_tags()
        if adoption is not None:
            tags = tags | set(adoption.tags)
        deployment = None if adoption is None else adoption.deployment
        # A subflow stands in its parent as a task run of the same name and states, as in
        # Prefect (the parent's graph and wait_for see it).
        self.placeholder: TaskRun | None = None
        if self.parent is not None and adoption is None:
            key = f"subflow.{flow.name}"
            index = self.parent.next_task_index(key)
            self.placeholder = TaskRun(
                key, flow.name, f"{flow.name}-{index}", tuple(sorted(tags)), self.parent.flow_run
            )
        self.flow_run = FlowRun(
            flow.name,
            generate_slug() if adoption is None else adoption.name,
            parameters,
            tuple(sorted(tags)),
            self.parent.flow_run if self.parent is not None else None,
            flow.version,
            run_id=None if adoption is None else adoption.flow_run_id,
            deployment=None if deployment is None else (deployment.id, deployment.name),
            parent_task_run_id=None if self.placeholder is None else self.placeholder.id,
        )
        self.validation_error: ParameterTypeError | None = None
        self.persist_result = flow_persists(flow, self.parent)
        self.result_store = flow_store(flow, self.parent)
        self.returned_state: State[Any] | None = None
        self.watch = get_bus().watch(self.flow_run.identity.resource_id) if flow.has_hooks else None
        self._pending_hooks: list[tuple[list[Any], State[Any]]] = []
        if adoption is None:
            self.transition(Pending())
        else:
            # continue from the Pending state the launcher recorded: no new run, no new state
            claimed: State[Any] = Pending()
            claimed.id = adoption.state_id
            claimed.timestamp = adoption.state_timestamp
            claimed.state_details.flow_run_id = adoption.flow_run_id
            self.flow_run.state = claimed
            self.flow_run.run_count = adoption.run_count
            if adoption.parent_flow_run_id is not None and self.parent is None:
                self.flow_run.adopt_parent(adoption.parent_flow_run_id)
        self.logger = get_run_logger(self._context(None))
        self.live = control.register(self.flow_run.id)

    # -- decisions ---------------------------------------------------------------------------
    def transition(self, state: State[Any]) -> None:
        set_state(self.flow_run, state)
        if self.placeholder is not None:
            set_state(
                self.placeholder, State(type=state.type, name=state.name, message=state.message)
            )
        if self.watch is not None:
            for record in self.watch.drain():
                if type(record) is not TransitionRecord:
                    continue  # someone else's event about this run: not a transition
                hooks = self.flow.hooks_for(record.state_type)
                if hooks:
                    self._pending_hooks.append((hooks, self.flow_run.state))  # type: ignore[arg-type]

    def validate_parameters(self) -> bool:
        """Validate against the type hints; on failure the run ends Failed before Running."""
        if not self.flow.validate_parameters or not self.flow.parameters.has_hints:
            return True
        try:
            validated = self.flow.parameters.validate(self.flow_run.parameters)
        except ParameterTypeError as exc:
            self.validation_error = exc
            self.transition(
                Failed(data=exc, message=f"Validation of flow parameters failed with error: {exc}")
            )
            return False
        self.flow_run.parameters = validated
        return True

    def begin_attempt(self) -> None:
        flow_run = self.flow_run
        self.returned_state = None  # a state an earlier attempt returned is not the result
        if flow_run.run_count == 0 and self.flow.flow_run_name is not None:
            flow_run.rename(self.flow.render_run_name(flow_run.parameters))
            self.logger = get_run_logger(self._context(None))
        if flow_run.run_count == 0:
            self.logger.info("Beginning flow run %r for flow %r", flow_run.name, flow_run.flow_name)
        self.transition(Running())

    def _context(self, task_runner: Any, loop: Any = None) -> FlowRunContext:
        log_prints = self.flow.log_prints
        if log_prints is None:
            if self.parent is not None:
                log_prints = self.parent.log_prints
            else:
                from headwater.settings import get_settings

                log_prints = get_settings().logging_log_prints
        return FlowRunContext(
            self.flow,
            self.flow_run,
            task_runner,
            bool(log_prints),
            loop=loop,
            thread_id=threading.get_ident(),
            persist_result=self.persist_result,
            result_store=self.result_store,
        )

    def call_arguments(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return self.flow.parameters.to_call(self.flow_run.parameters)

    def returned(self, value: Any) -> State[Any]:
        value = resolve_futures_to_states(value)
        state = return_value_to_state(value)
        if isinstance(value, State) and state is value:
            self.returned_state = value
            state = value.copy()
        elif self.persist_result and state.type is StateType.COMPLETED:
            persist_flow_result(
                self.result_store,
                self.flow_run.id,
                state,
                self.flow.cache_result_in_memory,
                self.logger,
            )
        return state

    @staticmethod
    def raised(exc: BaseException) -> State[Any]:
        state = Failed(
            data=exc, message=f"Flow run encountered an exception: {type(exc).__name__}: {exc}"
        )
        state.state_details.retriable = False
        return state

    def timed_out(self) -> State[Any]:
        error = FlowRunTimeoutError(
            f"Flow run exceeded timeout of {self.flow.timeout_seconds} second(s)"
        )
        return _named(StateType.FAILED, "TimedOut", data=error, message=str(error))

    def settle(self, state: State[Any]) -> float | None:
        """Apply the final state, or (for a failure with retries left) schedule a retry."""
        if state.type is StateType.FAILED and self.flow_run.run_count <= self.flow.retries:
            delay = float(self.flow.retry_delay_seconds or 0)
            when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=delay)
            self.logger.info(
                "%s; retry %d/%d will start in %g second(s)",
                state.message,
                self.flow_run.run_count,
                self.flow.retries,
                delay,
            )
            self.transition(AwaitingRetry(scheduled_time=when, message=state.message))
            return delay
        self.transition(state)
        self.logger.info("Finished in state %r", state)
        return None

    def cancelled(self) -> State[Any]:
        """Cancellation was requested: enter Cancelling now; Cancelled is the final state."""
        message = self.live.message or "Cancelled on request"
        self.transition(Cancelling(message=message))
        self.logger.info("Flow run cancelled: %s", message)
        return Cancelled(message=message)

    def crashed(self, exc: BaseException) -> None:
        # asyncio.CancelledError is anyio's cancellation too; asking anyio would fail in a
        # sync flow (no event loop), turning the crash report itself into an error
        if control.terminating or isinstance(exc, control.TerminationSignal):
            if self.live.message is not None:  # Prefect's rule: a cancelling run is Cancelled
                self.transition(Cancelled(message=self.live.message))
                return
            message = TERMINATED
        elif isinstance(exc, asyncio.CancelledError):
            message = "Execution was cancelled by the runtime environment."
        else:
            message = f"Execution was interrupted by an unexpected exception: {type(exc).__name__}"
        self.transition(Crashed(data=exc, message=message))
        self.logger.error("Crashed: %s", message)

    def take_hooks(self) -> list[tuple[list[Any], State[Any]]]:
        pending, self._pending_hooks = self._pending_hooks, []
        return pending

    def outcome(self, return_state: bool) -> Any:
        state = self.flow_run.state
        assert state is not None
        if return_state:
            return state
        if self.validation_error is not None:
            raise self.validation_error
        if self.returned_state is not None:
            if state.is_failed() and not isinstance(state.data, BaseException):
                raise FailedRun(state.message or "Flow run returned a Failed state")
            if not state.is_completed() and state.is_final():
                return state.result_now()
            return self.returned_state.data if state.is_completed() else self.returned_state
        return state.result_now()

    # -- drivers -----------------------------------------------------------------------------
    def execute_sync(self) -> State[Any]:
        flow = self.flow
        try:
            if self.validate_parameters():
                while True:
                    self.begin_attempt()
                    self._run_hooks_sync()
                    runner = flow.task_runner.duplicate()
                    token = flow_run_context.set(self._context(runner))
                    prints = enable_log_prints(flow_run_context.get().log_prints)  # type: ignore[union-attr]
                    thread_id = threading.get_ident()
                    self.live.bind_thread(thread_id)
                    deadline = (
                        None if flow.timeout_seconds is None else SyncDeadline(flow.timeout_seconds)
                    )
                    try:
                        try:
                            args, kwargs = self.call_arguments()
                            with runner:
                                if deadline is None:
                                    value = flow.fn(*args, **kwargs)
                                else:
                                    with deadline:
                                        value = flow.fn(*args, **kwargs)
                        finally:
                            cancelled = self.live.unbind(
                                functools.partial(withdraw_interrupt, thread_id)
                            )
                        state = self.cancelled() if cancelled else self.returned(value)
                    except CancellationInterrupt:
                        state = self.cancelled()
                    except TimeoutInterrupt:
                        if deadline is None or not deadline.fired:
                            raise  # a parent flow's deadline: the parent times out, not us
                        state = self.timed_out()
                    except Exception as exc:
                        state = self.cancelled() if self.live.message else self.raised(exc)
                    finally:
                        reset_log_prints(prints)
                        flow_run_context.reset(token)
                    delay = self.settle(state)
                    self._run_hooks_sync()
                    if delay is None:
                        break
                    time.sleep(delay)
        except BaseException as exc:
            if not (self.flow_run.state and self.flow_run.state.is_final()):
                self.crashed(exc)
                self._run_hooks_sync()
            self._finish_sync(raising=False)
            raise
        self._run_hooks_sync()
        self._finish_sync()
        return self.flow_run.state  # type: ignore[return-value]

    async def execute_async(self) -> State[Any]:
        try:
            if self.validate_parameters():
                while True:
                    self.begin_attempt()
                    await self._run_hooks_async()
                    state = await self._attempt_async()
                    delay = self.settle(state)
                    await self._run_hooks_async()
                    if delay is None:
                        break
                    await anyio.sleep(delay)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                if not (self.flow_run.state and self.flow_run.state.is_final()):
                    self.crashed(exc)
                    await self._run_hooks_async()
                await self._finish_async(raising=False)
            raise
        await self._run_hooks_async()
        await self._finish_async()
        return self.flow_run.state  # type: ignore[return-value]

    async def _attempt_async(self) -> State[Any]:
        flow = self.flow
        runner = flow.task_runner.duplicate()
        context = self._context(runner, loop=asyncio.get_running_loop())
        token = flow_run_context.set(context)
        prints = enable_log_prints(context.log_prints)
        raised: Exception | None = None
        value: Any = None
        loop = asyncio.get_running_loop()
        interrupted = False
        try:
            args, kwargs = self.call_arguments()
            with anyio.CancelScope() as cancellation:
                self.live.bind_scope(lambda: loop.call_soon_threadsafe(cancellation.cancel))
                with anyio.move_on_after(flow.timeout_seconds) as scope:
                    # submitted async tasks live in this group: none outlives the flow run
                    async with anyio.create_task_group() as group:
                        context.task_group = group
                        try:
                            value = await flow.fn(*args, **kwargs)
                        except Exception as exc:
                            raised = exc
        except BaseException:
            interrupted = True  # torn down (SIGTERM, Ctrl-C, the loop closing): do not wait
            raise
        finally:
            cancelled = self.live.unbind()
            context.task_group = None
            with anyio.CancelScope(shield=True):
                if interrupted:
                    runner.abandon()
                else:
                    await runner.shutdown_async()
            reset_log_prints(prints)
            flow_run_context.reset(token)
        if cancelled:
            return self.cancelled()
        if scope.cancelled_caught:
            return self.timed_out()
        if raised is not None:
            return self.raised(raised)
        try:
            return self.returned(value)
        except Exception as exc:
            return self.raised(exc)

    def _finish_sync(self, raising: bool = True) -> None:
        control.unregister(self.flow_run.id)
        if self.watch is not None:
            self.watch.close()
        self._check_durable(get_bus().flush(timeout=DURABILITY_TIMEOUT), raising)

    async def _finish_async(self, raising: bool = True) -> None:
        control.unregister(self.flow_run.id)
        if self.watch is not None:
            self.watch.close()
        self._check_durable(await get_bus().aflush(timeout=DURABILITY_TIMEOUT), raising)

    def _check_durable(self, durable: bool, raising: bool) -> None:
        """Rule 5: the terminal state must be committed before the call returns."""
        if durable:
            return
        _logger.warning(
            "Flow run %r finished but its events were not all persisted (a store failed, "
            "or did not confirm within %s s)",
            self.flow_run.name,
            DURABILITY_TIMEOUT,
        )
        if raising:
            # the start hooks re-check their services: a store that failed to write raises
            # its error here when persistence is required, instead of at the next run
            ensure_started()

    def _hook_args(self, state: State[Any]) -> tuple[Any, ...]:
        return (self.flow, self.flow_run, state)

    def _run_hooks_sync(self) -> None:
        for hooks, state in self.take_hooks():
            run_hooks_sync(hooks, self._hook_args(state), state.name, self.logger)

    async def _run_hooks_async(self) -> None:
        for hooks, state in self.take_hooks():
            await run_hooks_async(hooks, self._hook_args(state), state.name, self.logger)
