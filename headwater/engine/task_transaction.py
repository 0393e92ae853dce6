"""A task run's own transaction: cache lookup, result persistence, commit and rollback.

Only runs that ask for it get one (see ``TaskRunEngine.__init__``): runs whose result is
persisted, tasks with on_commit/on_rollback hooks, and runs inside an open transaction. A
plain task in a plain flow never comes here, so caching costs nothing to those who do not
use it.

Decoration time (:mod:`headwater.engine.result_options`) applies Prefect's option rules
once. Run time (:class:`TaskTransaction`) computes the key, opens the transaction, turns a
committed one into a ``Cached`` state (Pending → Cached: the function does not run, as
Prefect's CacheRetrieval rule has it), and stages the result for commit when the run
completes.
"""

from __future__ import annotations

import datetime
import functools
from typing import TYPE_CHECKING, Any, Protocol

from headwater.engine.cache_policies import NO_CACHE
from headwater.engine.context import task_run_context
from headwater.engine.result_options import TaskResultOptions
from headwater.engine.results import (
    PersistedResult,
    ResultRecordMetadata,
    ResultStore,
    default_result_store,
)
from headwater.engine.runtime_facts import task_run_fact, template_values
from headwater.engine.states import (
    Completed,
    Failed,
    State,
    StateType,
    _named,
    is_state_iterable,
)
from headwater.engine.transactions import IsolationLevel, PendingWrite, Transaction
from headwater.engine.transitions import TransitionRecord
from headwater.events.bus import get_bus
from headwater.exceptions import SerializationError
from headwater.settings import get_settings

if TYPE_CHECKING:
    from headwater.engine.context import FlowRunContext, TaskRunContext
    from headwater.engine.runs import TaskRun
    from headwater.engine.task_definition import TaskDefinition


class TaskAttempt(Protocol):
    """The task run a transaction belongs to (the task engine's ``TaskRunEngine``)."""

    @property
    def task(self) -> TaskDefinition[..., Any]: ...

    @property
    def task_run(self) -> TaskRun: ...

    @property
    def flow_ctx(self) -> FlowRunContext | None: ...

    @property
    def args(self) -> tuple[Any, ...]: ...

    @property
    def kwargs(self) -> dict[str, Any]: ...

    def transition(self, state: State[Any]) -> None: ...

    def context(self) -> TaskRunContext: ...


__all__ = [
    "TaskTransaction",
    "flow_persists",
    "flow_store",
    "persist_flow_result",
]


class TaskTransaction:
    """The transaction of one task run, driven by the task engine."""

    __slots__ = ("engine", "persist", "options", "store", "txn")

    def __init__(self, engine: TaskAttempt, persist: bool) -> None:
        self.engine = engine
        self.persist = persist
        self.options: TaskResultOptions = engine.task.result_options
        self.store: ResultStore | None = None
        self.txn: Transaction | None = None

    # -- entering -------------------------------------------------------------------------------
    def _open(self) -> bool:
        """Compute the key and build the transaction; True when that failed the run."""
        engine, options = self.engine, self.options
        flow_ctx = engine.flow_ctx
        settings = get_settings()
        key = None
        policy = options.cache_policy
        isolation = None
        if self.persist:
            self.store = options.store(flow_ctx.result_store if flow_ctx is not None else None)
            token = task_run_context.set(engine.context())
            try:
                key = self._compute_key(policy, settings.tasks_disable_caching)
            except Exception as exc:
                engine.transition(
                    Failed(
                        data=exc,
                        message=f"Task run failed to compute its cache key: "
                        f"{type(exc).__name__}: {exc}",
                    )
                )
                return True
            finally:
                task_run_context.reset(token)
            isolation = getattr(policy, "isolation_level", None)
        refresh = options.refresh_cache
        txn = self.txn = Transaction(
            key=key,
            store=self.store,
            isolation_level=IsolationLevel(isolation) if isolation is not None else None,
            overwrite=settings.tasks_refresh_cache if refresh is None else refresh,
            write_on_commit=self.persist,
        )
        txn._load = options.cache_result_in_memory
        return False

    def _compute_key(self, policy: Any, disabled: bool) -> str | None:
        options = self.options
        if options.result_storage_key is not None:
            return _format_storage_key(options.result_storage_key)
        if policy is None or policy == NO_CACHE or disabled:
            return None
        engine = self.engine
        flow_ctx = engine.flow_ctx
        inputs = engine.task.parameters.bind(engine.args, engine.kwargs)
        flow_parameters = flow_ctx.flow_run.parameters if flow_ctx is not None else {}
        key: str | None = policy.compute_key(task_run_context.get(), inputs, flow_parameters)
        return key

    def enter_sync(self) -> bool:
        """Open the transaction; True when the run is already over (Cached, or Failed)."""
        if self._open():
            return True
        assert self.txn is not None
        try:
            self.txn.begin()
        except Exception as exc:
            return self._unavailable(exc)
        return self._cached()

    async def enter_async(self) -> bool:
        if self._open():
            return True
        assert self.txn is not None
        try:
            await self.txn.abegin()
        except Exception as exc:
            return self._unavailable(exc)
        return self._cached()

    def _unavailable(self, exc: Exception) -> bool:
        """The storage or the lock could not be used: the run fails (it never ran)."""
        message = f"Task run could not open its transaction: {type(exc).__name__}: {exc}"
        self.engine.transition(Failed(data=exc, message=message))
        return True

    def _cached(self) -> bool:
        txn = self.txn
        assert txn is not None
        if not txn.is_committed() or txn.record is None:
            return False
        record, store = txn.record, self.store
        assert store is not None
        meta = record.metadata
        data = record.result if txn._load else PersistedResult(meta, store)
        task_run = self.engine.task_run
        if not store.blocking:  # readable by this run's id too (remote: one PUT is not worth it)
            store.result_storage.link_run(str(task_run.id), meta.storage_key)
        self.engine.transition(
            _named(
                StateType.COMPLETED,
                "Cached",
                data=data,
                cache_key=meta.storage_key,
                cache_expiration=meta.expiration,
            )
        )
        return True

    # -- completing -----------------------------------------------------------------------------
    def completed_state(self, value: Any) -> State[Any]:
        """The Completed state for ``value``, its result staged for the commit."""
        txn, options, task = self.txn, self.options, self.engine.task
        assert txn is not None
        data = value
        staged: Any = None
        details: dict[str, Any] = {}
        if self.persist:
            store = self.store
            assert store is not None
            run_id = str(self.engine.task_run.id)
            expiration = None
            if options.cache_expiration is not None and txn.key:
                expiration = datetime.datetime.now(datetime.timezone.utc) + options.cache_expiration
            meta = ResultRecordMetadata(
                storage_key=txn.key or run_id,
                serializer=store.serializer.type,
                storage=store.result_storage.location,
                created=datetime.datetime.now(datetime.timezone.utc),
                expiration=expiration,
                run_id=run_id,
            )
            staged = PendingWrite(meta, value)
            if not options.cache_result_in_memory:
                data = PersistedResult(meta, store)
            if txn.key:
                details = {"cache_key": txn.key, "cache_expiration": expiration}
        rolled_back = functools.partial(_emit_rolled_back, self.engine)
        rolled_back.log_on_run = False  # type: ignore[attr-defined]
        txn.stage(
            staged,
            on_rollback_hooks=[rolled_back, *task.on_rollback_hooks],
            on_commit_hooks=list(task.on_commit_hooks),
        )
        return Completed(data=data, **details)

    # -- leaving --------------------------------------------------------------------------------
    def exit_sync(self) -> None:
        txn = self.txn
        if txn is not None and txn._token is not None:
            txn.close(failed=not self._completed())

    async def exit_async(self) -> None:
        txn = self.txn
        if txn is not None and txn._token is not None:
            await txn.aclose(failed=not self._completed())

    def _completed(self) -> bool:
        state = self.engine.task_run.state
        return state is not None and state.type is StateType.COMPLETED


def _format_storage_key(template: str) -> str:
    """``result_storage_key`` rendered over ``headwater.runtime`` and the parameters."""
    return template.format(**template_values(), parameters=task_run_fact("parameters"))


def _emit_rolled_back(engine: TaskAttempt, txn: Transaction) -> None:
    """Publish ``headwater.task-run.RolledBack``: an event, not a state the run enters."""
    bus = get_bus()
    task_run = engine.task_run
    previous = task_run.state
    if previous is None or not bus.has_subscribers:
        return
    state = _named(
        StateType.COMPLETED, "RolledBack", message="Task rolled back as part of transaction"
    )
    record = TransitionRecord(
        task_run.identity,
        task_run.run_count,
        (previous.id, previous.type, previous.name, previous.message, previous.timestamp),
        (state.id, state.type, state.name, state.message, state.timestamp),
    )
    # published as a full Event (same shape as a transition's): the run's own hook watch
    # takes only TransitionRecords, so this cannot fire on_completion hooks a second time
    bus.publish(record.to_event())


def flow_store(flow: Any, parent: Any) -> ResultStore | None:
    """The store a flow run's tasks inherit: the flow's own options, else its parent's."""
    if getattr(flow, "result_storage", None) is None and flow.result_serializer is None:
        return getattr(parent, "result_store", None)
    return ResultStore(flow.result_storage, flow.result_serializer)


def flow_persists(flow: Any, parent: Any) -> bool:
    if flow.persist_result is not None:
        return bool(flow.persist_result)
    if parent is not None:
        return bool(parent.persist_result)
    return get_settings().results_persist_by_default


def persist_flow_result(
    store: ResultStore | None, run_id: Any, state: State[Any], in_memory: bool, logger: Any
) -> None:
    """Write a flow run's Completed value under its run id (the flow's own result)."""
    data = state.data
    if isinstance(data, State) or is_state_iterable(data):
        return  # states of other runs: their own results are persisted by those runs
    store = store if store is not None else default_result_store()
    try:
        meta = store.write(str(run_id), data, run_id=run_id)
    except SerializationError as exc:
        logger.warning("The flow run's result was not persisted: %s", exc)
        return
    if not in_memory:
        state.data = PersistedResult(meta, store)
