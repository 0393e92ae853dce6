"""States: types, names, predicates, ``result()`` rules and return-value aggregation."""

from __future__ import annotations

import datetime
import uuid

import pytest

from headwater.exceptions import (
    CancelledRun,
    CrashedRun,
    FailedRun,
    PausedRun,
    UnfinishedRun,
)
from headwater.states import (
    AwaitingConcurrencySlot,
    AwaitingRetry,
    Cancelled,
    Cancelling,
    Completed,
    Crashed,
    Failed,
    InfrastructurePending,
    Late,
    Paused,
    Pending,
    Retrying,
    Running,
    Scheduled,
    State,
    StateType,
    Submitting,
    Suspended,
    get_state_exception,
    is_state_iterable,
    return_value_to_state,
)


def _run_state(factory, **kwargs) -> State:
    """A state as a run would have it: with run ids in its details."""
    state = factory(**kwargs)
    state.state_details.flow_run_id = uuid.uuid4()
    return state


@pytest.mark.parametrize(
    ("factory", "state_type", "name"),
    [
        (Scheduled, StateType.SCHEDULED, "Scheduled"),
        (Late, StateType.SCHEDULED, "Late"),
        (AwaitingRetry, StateType.SCHEDULED, "AwaitingRetry"),
        (AwaitingConcurrencySlot, StateType.SCHEDULED, "AwaitingConcurrencySlot"),
        (Pending, StateType.PENDING, "Pending"),
        (Submitting, StateType.PENDING, "Submitting"),
        (InfrastructurePending, StateType.PENDING, "InfrastructurePending"),
        (Running, StateType.RUNNING, "Running"),
        (Retrying, StateType.RUNNING, "Retrying"),
        (Completed, StateType.COMPLETED, "Completed"),
        (Failed, StateType.FAILED, "Failed"),
        (Crashed, StateType.CRASHED, "Crashed"),
        (Cancelling, StateType.CANCELLING, "Cancelling"),
        (Cancelled, StateType.CANCELLED, "Cancelled"),
        (Paused, StateType.PAUSED, "Paused"),
        (Suspended, StateType.PAUSED, "Suspended"),
    ],
)
def test_constructors_give_prefect_types_and_names(factory, state_type, name):
    state = factory()
    assert state.type is state_type
    assert state.name == name


def test_default_name_is_the_type_title_cased():
    assert State(type=StateType.CANCELLING).name == "Cancelling"
    assert State(type=StateType.COMPLETED).name == "Completed"


def test_explicit_name_is_kept():
    assert Completed(name="Cached").name == "Cached"
    assert Failed(name="TimedOut").type is StateType.FAILED


def test_constructors_reject_unknown_arguments():
    with pytest.raises(TypeError, match="unexpected state arguments"):
        Completed(colour="red")


def test_detail_keywords_land_in_state_details():
    when = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    state = AwaitingRetry(scheduled_time=when, message="later")
    assert state.state_details.scheduled_time == when
    assert state.message == "later"


def test_scheduled_defaults_to_now():
    before = datetime.datetime.now(datetime.timezone.utc)
    state = Scheduled()
    assert state.state_details.scheduled_time is not None
    assert state.state_details.scheduled_time >= before


@pytest.mark.parametrize(
    ("factory", "predicate"),
    [
        (Scheduled, "is_scheduled"),
        (Pending, "is_pending"),
        (Running, "is_running"),
        (Completed, "is_completed"),
        (Failed, "is_failed"),
        (Crashed, "is_crashed"),
        (Cancelled, "is_cancelled"),
        (Cancelling, "is_cancelling"),
        (Paused, "is_paused"),
    ],
)
def test_exactly_one_type_predicate_holds(factory, predicate):
    state = factory()
    predicates = [
        "is_scheduled",
        "is_pending",
        "is_running",
        "is_completed",
        "is_failed",
        "is_crashed",
        "is_cancelled",
        "is_cancelling",
        "is_paused",
    ]
    assert [name for name in predicates if getattr(state, name)()] == [predicate]


def test_is_final_holds_for_the_four_terminal_types_only():
    final = {f().type for f in (Completed, Failed, Cancelled, Crashed)}
    assert all(f().is_final() for f in (Completed, Failed, Cancelled, Crashed))
    for factory in (Scheduled, Pending, Running, Paused, Cancelling):
        assert not factory().is_final()
    assert final == {
        StateType.COMPLETED,
        StateType.FAILED,
        StateType.CANCELLED,
        StateType.CRASHED,
    }


def test_copy_resets_id_and_timestamp_and_keeps_the_rest():
    state = Completed(data=[1], message="done", name="Cached")
    copied = state.copy()
    assert copied.id != state.id
    assert copied.timestamp >= state.timestamp
    assert (copied.type, copied.name, copied.message, copied.data) == (
        state.type,
        "Cached",
        "done",
        [1],
    )
    copied.state_details.cache_key = "k"
    assert state.state_details.cache_key is None


# -- result() ----------------------------------------------------------------------------


def test_result_of_completed_returns_data():
    assert Completed(data={"a": 1}).result() == {"a": 1}


def test_result_of_failed_raises_the_stored_exception_object():
    error = ValueError("boom")
    with pytest.raises(ValueError) as info:
        Failed(data=error).result()
    assert info.value is error


def test_result_without_raise_on_failure_returns_the_exception():
    error = ValueError("boom")
    assert Failed(data=error).result(raise_on_failure=False) is error


def test_result_of_hand_made_failed_raises_failed_run_with_its_message():
    with pytest.raises(FailedRun, match="it went wrong"):
        Failed(message="it went wrong").result()


def test_result_of_failed_with_string_data_uses_the_message_first():
    with pytest.raises(FailedRun, match="^from message$"):
        Failed(data="from data", message="from message").result()
    with pytest.raises(FailedRun, match="^from data$"):
        Failed(data="from data").result()


def test_result_of_crashed_and_cancelled_without_exception():
    with pytest.raises(CrashedRun, match="lost"):
        Crashed(message="lost").result()
    with pytest.raises(CancelledRun, match="stopped"):
        Cancelled(message="stopped").result()
    assert isinstance(Crashed(message="lost").result(raise_on_failure=False), CrashedRun)


@pytest.mark.parametrize("factory", [Scheduled, Pending, Running, Cancelling, AwaitingRetry])
def test_result_of_unfinished_state_raises_unfinished_run(factory):
    with pytest.raises(UnfinishedRun):
        factory().result()
    with pytest.raises(UnfinishedRun):
        factory().result(raise_on_failure=False)


def test_result_of_paused_raises_paused_run():
    with pytest.raises(PausedRun):
        Paused().result()
    with pytest.raises(PausedRun):
        Suspended().result(raise_on_failure=False)


def test_failed_state_holding_states_raises_the_first_failing_inner_exception():
    first, second = KeyError("first"), ValueError("second")
    inner = [Completed(data=1), Failed(data=first), Failed(data=second)]
    with pytest.raises(KeyError) as info:
        Failed(data=inner).result()
    assert info.value is first
    assert get_state_exception(Failed(data=Crashed(data=second))) is second


@pytest.mark.anyio
async def test_aresult_follows_the_same_rules():
    assert await Completed(data=3).aresult() == 3
    with pytest.raises(FailedRun):
        await Failed(message="x").aresult()
    assert isinstance(await Failed(message="x").aresult(raise_on_failure=False), FailedRun)


# -- Paused ------------------------------------------------------------------------------


def test_paused_with_both_timeout_and_expiration_is_an_error():
    when = datetime.datetime.now(datetime.timezone.utc)
    with pytest.raises(ValueError, match="not both"):
        Paused(timeout_seconds=10, pause_expiration_time=when)
    with pytest.raises(ValueError, match="not both"):
        Suspended(timeout_seconds=10, pause_expiration_time=when)


def test_paused_timeout_sets_the_expiration():
    before = datetime.datetime.now(datetime.timezone.utc)
    state = Paused(timeout_seconds=60, pause_key="k")
    timeout = state.state_details.pause_timeout
    assert timeout is not None
    assert timeout - before >= datetime.timedelta(seconds=59)
    assert state.state_details.pause_key == "k"
    assert state.state_details.pause_reschedule is False
    assert Suspended().state_details.pause_reschedule is True


# -- return_value_to_state ------------------------------------------------------------------


def test_plain_value_becomes_completed_with_that_value():
    state = return_value_to_state({"x": 1})
    assert state.is_completed()
    assert state.data == {"x": 1}


def test_none_becomes_completed():
    state = return_value_to_state(None)
    assert state.is_completed()
    assert state.result() is None


def test_hand_made_state_is_used_as_is():
    failed = Failed(message="by hand")
    assert return_value_to_state(failed) is failed
    completed = Completed(data=5)
    assert return_value_to_state(completed) is completed


def test_single_run_state_is_aggregated():
    state = return_value_to_state(_run_state(Failed, data=ValueError("x")))
    assert state.is_failed()
    assert state.message == "1/1 states failed."


def test_all_completed_states_aggregate_to_completed():
    inner = [_run_state(Completed, data=1), _run_state(Completed, data=2)]
    state = return_value_to_state(inner)
    assert state.is_completed()
    assert state.message == "All states completed."
    assert state.data is inner


def test_some_failed_states_aggregate_to_failed_with_a_count():
    error = ValueError("bad")
    inner = [
        _run_state(Completed, data=1),
        _run_state(Failed, data=error),
        _run_state(Crashed, data=RuntimeError("c")),
    ]
    state = return_value_to_state(inner)
    assert state.is_failed()
    assert state.message == "2/3 states failed."
    with pytest.raises(ValueError) as info:
        state.result()
    assert info.value is error


def test_unfinished_inner_states_make_the_aggregate_failed():
    state = return_value_to_state((_run_state(Completed), _run_state(Running)))
    assert state.is_failed()
    assert state.message is not None
    assert state.message.startswith("0/2 states failed.")


def test_cancelled_takes_precedence_over_paused_and_failed():
    inner = [_run_state(Failed), _run_state(Paused), _run_state(Cancelled)]
    assert return_value_to_state(inner).type is StateType.CANCELLED


def test_paused_takes_precedence_over_failed():
    inner = [_run_state(Failed), _run_state(Paused), _run_state(Completed)]
    assert return_value_to_state(inner).type is StateType.PAUSED


def test_generator_becomes_a_completed_list():
    state = return_value_to_state(i * 2 for i in range(3))
    assert state.is_completed()
    assert state.data == [0, 2, 4]


def test_mixed_or_empty_collections_are_plain_values():
    mixed = [Completed(), 1]
    assert not is_state_iterable(mixed)
    assert return_value_to_state(mixed).data is mixed
    assert not is_state_iterable([])
    assert return_value_to_state([]).data == []
    assert is_state_iterable((Completed(), Failed()))
