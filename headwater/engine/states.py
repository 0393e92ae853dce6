"""States: what a flow run or task run is doing, and the result it carries.

The state types, names and ``result()`` rules are Prefect 3's, so code that inspects
states keeps working after migration. A state is a small Struct; ``data`` holds the
run's return value (or its exception) and is never copied into events.
"""

from __future__ import annotations

import datetime
import enum
import uuid
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import msgspec

from headwater.engine.results import PersistedResult
from headwater.exceptions import (
    CancelledRun,
    CrashedRun,
    FailedRun,
    PausedRun,
    UnfinishedRun,
)
from headwater.ids import new_uuid

__all__ = [
    "State",
    "StateDetails",
    "StateType",
    "TERMINAL_STATES",
    "AwaitingConcurrencySlot",
    "AwaitingRetry",
    "Cancelled",
    "Cancelling",
    "Completed",
    "Crashed",
    "Failed",
    "InfrastructurePending",
    "Late",
    "Paused",
    "Pending",
    "Retrying",
    "Running",
    "Scheduled",
    "Submitting",
    "Suspended",
    "get_state_exception",
    "is_state_iterable",
    "return_value_to_state",
]

R = TypeVar("R")


def _no_loop_check() -> bool:
    return False


_in_async_context: Callable[[], bool] = _no_loop_check
"""Whether a sync-compatible call should return an awaitable; the engine's rule
(:mod:`headwater.engine.dispatch`) is installed with :func:`set_async_context_check`."""


def set_async_context_check(check: Callable[[], bool]) -> None:
    global _in_async_context
    _in_async_context = check


class StateType(str, enum.Enum):
    """The kind of a state; the name (e.g. "Retrying") refines it."""

    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"

    def __str__(self) -> str:
        return self.value


TERMINAL_STATES = frozenset(
    {StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED}
)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class StateDetails(msgspec.Struct, kw_only=True):
    """Bookkeeping that travels with a state (run ids, schedule, cache and pause details)."""

    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None
    child_flow_run_id: uuid.UUID | None = None
    scheduled_time: datetime.datetime | None = None
    cache_key: str | None = None
    cache_expiration: datetime.datetime | None = None
    untrackable_result: bool = False
    pause_timeout: datetime.datetime | None = None
    pause_reschedule: bool = False
    pause_key: str | None = None
    refresh_cache: bool | None = None
    retriable: bool | None = None
    transition_id: uuid.UUID | None = None


class State(msgspec.Struct, Generic[R], kw_only=True):
    """The state of a run at one moment.

    Attributes:
        type: the state's kind.
        name: the state's name; defaults to the type title-cased ("Completed").
        message: a human-readable explanation.
        data: the run's result, or the exception for failed states.
        state_details: run ids and scheduling details.
        id: unique id; the event announcing this state carries the same id.
        timestamp: when the state was created (UTC).
    """

    type: StateType
    name: str = ""
    message: str | None = None
    data: Any = None
    state_details: StateDetails = msgspec.field(default_factory=StateDetails)
    id: uuid.UUID = msgspec.field(default_factory=new_uuid)
    timestamp: datetime.datetime = msgspec.field(default_factory=_now)

    def __post_init__(self) -> None:
        if not self.name:
            self.name = self.type.value.replace("_", " ").title()

    # -- predicates ------------------------------------------------------------------
    def is_scheduled(self) -> bool:
        return self.type is StateType.SCHEDULED

    def is_pending(self) -> bool:
        return self.type is StateType.PENDING

    def is_running(self) -> bool:
        return self.type is StateType.RUNNING

    def is_completed(self) -> bool:
        return self.type is StateType.COMPLETED

    def is_failed(self) -> bool:
        return self.type is StateType.FAILED

    def is_crashed(self) -> bool:
        return self.type is StateType.CRASHED

    def is_cancelled(self) -> bool:
        return self.type is StateType.CANCELLED

    def is_cancelling(self) -> bool:
        return self.type is StateType.CANCELLING

    def is_paused(self) -> bool:
        return self.type is StateType.PAUSED

    def is_final(self) -> bool:
        return self.type in TERMINAL_STATES

    # -- results ---------------------------------------------------------------------
    def result(self, raise_on_failure: bool = True, retry_result_failure: bool = True) -> Any:
        """Return the run's result, following Prefect's rules.

        Sync-compatible, as Prefect's: in async code (an async flow or task, or a running
        event loop outside any run) it returns an awaitable (``await state.result()``).

        A persisted result not kept in memory is loaded from storage; with
        ``retry_result_failure`` a failed read is tried 10 times, 0.25 s apart.

        Raises:
            PausedRun: the state is Paused.
            UnfinishedRun: the state is not final.
            Exception: with ``raise_on_failure``, the exception of a failed, crashed or
                cancelled state (the original object the run raised).
            ResultNotFound: the persisted result cannot be found.
        """
        if _in_async_context():
            return self.aresult(raise_on_failure, retry_result_failure)
        return self.result_now(raise_on_failure, retry_result_failure)

    def result_now(self, raise_on_failure: bool = True, retry_result_failure: bool = True) -> Any:
        """:meth:`result`, synchronously wherever it is called (what the engine uses)."""
        if self.type is StateType.PAUSED:
            raise PausedRun(f"Run is paused: {self.message or self.name}")
        if self.type not in TERMINAL_STATES:
            raise UnfinishedRun(
                f"Run is in {self.type.value} state ({self.name!r}); its result is not available"
            )
        if self.type is not StateType.COMPLETED:
            exception = get_state_exception(self)
            if raise_on_failure:
                raise exception
            return exception
        data = self.data
        if type(data) is PersistedResult:
            return data.get(retry=retry_result_failure)
        return data

    async def aresult(
        self, raise_on_failure: bool = True, retry_result_failure: bool = True
    ) -> Any:
        """Async twin of :meth:`result`; a persisted result is read in a worker thread."""
        data = self.data
        if type(data) is PersistedResult and self.type is StateType.COMPLETED:
            return await data.aget(retry=retry_result_failure)
        return self.result_now(raise_on_failure=raise_on_failure)

    def copy(self, **changes: Any) -> State[Any]:
        """A copy with a new id and timestamp, as Prefect's ``State.copy`` resets them."""
        fields = {
            "type": self.type,
            "name": self.name,
            "message": self.message,
            "data": self.data,
            "state_details": msgspec.structs.replace(self.state_details),
        }
        fields.update(changes)
        return State(**fields)

    def __repr__(self) -> str:
        result = _short(self.data)
        return f"{self.name}(message={self.message!r}, type={self.type.value}, result={result})"

    __str__ = __repr__

    def is_hand_made(self) -> bool:
        """True for a state a user constructed (no run ids recorded in its details)."""
        details = self.state_details
        return details.flow_run_id is None and details.task_run_id is None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def get_state_exception(state: State[Any]) -> BaseException:
    """The exception a failed/crashed/cancelled state stands for.

    The stored exception when there is one; for a state holding states, the first failing
    inner state's exception; otherwise a FailedRun/CrashedRun/CancelledRun built from the
    message.
    """
    data = state.data
    if isinstance(data, BaseException):
        return data
    if isinstance(data, State):
        return get_state_exception(data)
    if is_state_iterable(data):
        for inner in data:
            if inner.type in (StateType.FAILED, StateType.CRASHED, StateType.CANCELLED):
                return get_state_exception(inner)
    message = state.message or (data if isinstance(data, str) else None) or state.name
    if state.type is StateType.CRASHED:
        return CrashedRun(message)
    if state.type is StateType.CANCELLED:
        return CancelledRun(message)
    return FailedRun(message)


def is_state_iterable(value: Any) -> bool:
    """True for a non-empty list, tuple or set made only of states."""
    if isinstance(value, (list, tuple, set, frozenset)) and value:
        return all(isinstance(item, State) for item in value)
    return False


def return_value_to_state(value: Any) -> State[Any]:
    """Turn what a flow function returned into its final state (Prefect's rules).

    A hand-made state is used as is; one run state or a collection of states is
    aggregated; a generator becomes a list; anything else is Completed with that value.
    """
    if isinstance(value, State):
        if value.is_hand_made():
            return value
        return _aggregate([value], value)
    if is_state_iterable(value):
        return _aggregate(list(value), value)
    if _is_generator(value):
        return Completed(data=list(value))
    return Completed(data=value)


def _is_generator(value: Any) -> bool:
    import inspect

    return inspect.isgenerator(value)


def _aggregate(states: list[State[Any]], data: Any) -> State[Any]:
    total = len(states)
    if all(state.type is StateType.COMPLETED for state in states):
        return Completed(data=data, message="All states completed.")
    if any(state.type is StateType.CANCELLED for state in states):
        cancelled = sum(state.type is StateType.CANCELLED for state in states)
        return Cancelled(data=data, message=f"{cancelled}/{total} states cancelled.")
    if any(state.type is StateType.PAUSED for state in states):
        paused = sum(state.type is StateType.PAUSED for state in states)
        return Paused(data=data, message=f"{paused}/{total} states paused.")
    failed = sum(state.type in (StateType.FAILED, StateType.CRASHED) for state in states)
    unfinished = total - failed - sum(state.type is StateType.COMPLETED for state in states)
    message = f"{failed}/{total} states failed."
    if unfinished:
        message += f" {unfinished}/{total} states did not finish."
    return Failed(data=data, message=message)


# -- constructors ---------------------------------------------------------------------------


def _make(type_: StateType, name: str | None, kwargs: dict[str, Any]) -> State[Any]:
    if _PLAIN_ARGUMENTS.issuperset(kwargs):
        # the engine's per-task path: no detail fields to sort out
        return State(type=type_, name=name or _DEFAULT_NAMES[type_], **kwargs)
    details = kwargs.pop("state_details", None) or StateDetails()
    for key in list(kwargs):
        if key in _DETAIL_FIELDS:
            setattr(details, key, kwargs.pop(key))
    unknown = set(kwargs) - {"message", "data"}
    if unknown:
        raise TypeError(f"unexpected state arguments: {sorted(unknown)}")
    return State(type=type_, name=name or "", state_details=details, **kwargs)


_DETAIL_FIELDS = frozenset(StateDetails.__struct_fields__)
_PLAIN_ARGUMENTS = frozenset({"message", "data"})
_DEFAULT_NAMES = {kind: kind.value.replace("_", " ").title() for kind in StateType}


def Scheduled(scheduled_time: datetime.datetime | None = None, **kwargs: Any) -> State[Any]:
    """A run waiting for ``scheduled_time`` (default: now)."""
    kwargs["scheduled_time"] = scheduled_time or _now()
    return _make(StateType.SCHEDULED, kwargs.pop("name", None), kwargs)


def Late(scheduled_time: datetime.datetime | None = None, **kwargs: Any) -> State[Any]:
    return Scheduled(scheduled_time, name="Late", **kwargs)


def AwaitingRetry(scheduled_time: datetime.datetime | None = None, **kwargs: Any) -> State[Any]:
    return Scheduled(scheduled_time, name="AwaitingRetry", **kwargs)


def AwaitingConcurrencySlot(
    scheduled_time: datetime.datetime | None = None, **kwargs: Any
) -> State[Any]:
    return Scheduled(scheduled_time, name="AwaitingConcurrencySlot", **kwargs)


def Pending(**kwargs: Any) -> State[Any]:
    return _make(StateType.PENDING, kwargs.pop("name", None), kwargs)


def Submitting(**kwargs: Any) -> State[Any]:
    return _make(StateType.PENDING, "Submitting", kwargs)


def InfrastructurePending(**kwargs: Any) -> State[Any]:
    return _make(StateType.PENDING, "InfrastructurePending", kwargs)


def Running(**kwargs: Any) -> State[Any]:
    return _make(StateType.RUNNING, kwargs.pop("name", None), kwargs)


def Retrying(**kwargs: Any) -> State[Any]:
    return _make(StateType.RUNNING, "Retrying", kwargs)


def Completed(**kwargs: Any) -> State[Any]:
    return _make(StateType.COMPLETED, kwargs.pop("name", None), kwargs)


def Failed(**kwargs: Any) -> State[Any]:
    return _make(StateType.FAILED, kwargs.pop("name", None), kwargs)


def Crashed(**kwargs: Any) -> State[Any]:
    return _make(StateType.CRASHED, kwargs.pop("name", None), kwargs)


def Cancelling(**kwargs: Any) -> State[Any]:
    return _make(StateType.CANCELLING, kwargs.pop("name", None), kwargs)


def Cancelled(**kwargs: Any) -> State[Any]:
    return _make(StateType.CANCELLED, kwargs.pop("name", None), kwargs)


def Paused(
    timeout_seconds: float | None = None,
    pause_expiration_time: datetime.datetime | None = None,
    reschedule: bool = False,
    pause_key: str | None = None,
    **kwargs: Any,
) -> State[Any]:
    """A paused run; give a timeout or an expiration time, not both."""
    if timeout_seconds is not None and pause_expiration_time is not None:
        raise ValueError("Paused() takes timeout_seconds or pause_expiration_time, not both")
    if timeout_seconds is not None:
        pause_expiration_time = _now() + datetime.timedelta(seconds=timeout_seconds)
    kwargs.update(
        pause_timeout=pause_expiration_time, pause_reschedule=reschedule, pause_key=pause_key
    )
    return _make(StateType.PAUSED, kwargs.pop("name", None), kwargs)


def Suspended(
    timeout_seconds: float | None = None,
    pause_expiration_time: datetime.datetime | None = None,
    pause_key: str | None = None,
    **kwargs: Any,
) -> State[Any]:
    return Paused(
        timeout_seconds,
        pause_expiration_time,
        reschedule=True,
        pause_key=pause_key,
        name="Suspended",
        **kwargs,
    )


def _named(type_: StateType, name: str, **kwargs: Any) -> State[Any]:
    """Engine-internal constructor for named states (TimedOut, NotReady, Cached...)."""
    return _make(type_, name, kwargs)
