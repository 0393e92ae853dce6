"""Retries: the pure delay functions, and how the task engine retries."""

from __future__ import annotations

import logging
import random

import pytest
from support import assert_transitions

from headwater import flow, task
from headwater.engine.retries import (
    exponential_backoff,
    jittered,
    resolve_retry_delays,
    retry_delay,
)
from headwater.events import get_bus
from headwater.runtime import task_run as runtime_task_run
from headwater.states import Failed
from headwater.tasks import exponential_backoff as public_exponential_backoff

# -- pure functions ----------------------------------------------------------------------


def test_exponential_backoff_doubles_each_attempt():
    assert exponential_backoff(10)(3) == [10, 20, 40]
    assert exponential_backoff(0.5)(4) == [0.5, 1, 2, 4]
    assert exponential_backoff(1)(0) == []
    assert public_exponential_backoff is exponential_backoff


def test_exponential_backoff_is_capped_at_fifty_entries():
    assert len(exponential_backoff(1)(500)) == 50


def test_exponential_backoff_rejects_a_negative_factor():
    with pytest.raises(ValueError, match="backoff_factor must be >= 0"):
        exponential_backoff(-1)


def test_resolve_retry_delays_normalises_values():
    assert resolve_retry_delays(None, 3, "task 't'") == (0.0,)
    assert resolve_retry_delays(2, 3, "task 't'") == (2.0,)
    assert resolve_retry_delays([1, 2.5], 3, "task 't'") == (1.0, 2.5)
    assert resolve_retry_delays([], 3, "task 't'") == (0.0,)
    assert resolve_retry_delays(exponential_backoff(2), 3, "task 't'") == (2.0, 4.0, 8.0)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, r"task 't': retry_delay_seconds must not be negative"),
        ([1, -2], r"task 't': retry_delay_seconds must not be negative"),
        (float("nan"), r"task 't': retry_delay_seconds must not be negative"),
        ([0] * 51, r"task 't': retry_delay_seconds has 51 entries; at most 50 are allowed"),
        ("5", r"task 't': retry_delay_seconds must be a number, a list of numbers or a callable"),
        (True, r"task 't': retry_delay_seconds must be a number"),
        ({"a": 1}, r"task 't': retry_delay_seconds must be a number"),
    ],
)
def test_resolve_retry_delays_rejects_bad_values(value, message):
    with pytest.raises(ValueError, match=message):
        resolve_retry_delays(value, 3, "task 't'")


def test_task_decorator_validates_retry_options():
    with pytest.raises(ValueError, match="task 'named': retry_delay_seconds"):
        task(name="named", retries=1, retry_delay_seconds=-1)(lambda: None)
    with pytest.raises(ValueError, match="retries must be a non-negative integer"):
        task(retries=-1)(lambda: None)
    with pytest.raises(ValueError, match="retry_jitter_factor must be >= 0"):
        task(retry_jitter_factor=-0.5)(lambda: None)


def test_retry_delay_indexes_by_attempt_and_repeats_the_last():
    delays = (1.0, 2.0, 5.0)
    assert [retry_delay(delays, attempt) for attempt in range(6)] == [1, 2, 5, 5, 5, 5]
    assert retry_delay((3.0,), 10) == 3.0


def test_jitter_stays_within_bounds():
    rng = random.Random(1234)
    base, factor = 10.0, 0.5
    draws = [jittered(base, factor, rng) for _ in range(2000)]
    assert all(0 < d <= base * (1 + factor) for d in draws)
    assert len(set(draws)) > 1000  # actually spread out
    assert any(d > base for d in draws)
    assert any(d < base for d in draws)


def test_jitter_is_deterministic_for_a_seeded_generator():
    first = [jittered(4, 1, random.Random(7)) for _ in range(3)]
    second = [jittered(4, 1, random.Random(7)) for _ in range(3)]
    assert first == second


def test_no_jitter_when_base_is_zero_or_no_factor():
    rng = random.Random(0)
    assert jittered(0, 2.0, rng) == 0
    assert jittered(3.0, None, rng) == 3.0
    assert jittered(3.0, 0, rng) == 3.0


def test_jitter_edges_of_the_random_draw():
    class Fixed(random.Random):
        def __init__(self, value):
            super().__init__()
            self.value = value

        def random(self):
            return self.value

    upper = 2.0 * (1 + 1.0)
    assert jittered(2.0, 1.0, Fixed(0.0)) == pytest.approx(upper)
    assert 0 < jittered(2.0, 1.0, Fixed(0.999999999)) < 1e-6


# -- task engine ------------------------------------------------------------------------


def _flaky(failures: int, **options):
    attempts = []

    @task(**options)
    def flaky():
        attempts.append(runtime_task_run.run_count)
        if len(attempts) <= failures:
            raise ValueError(f"attempt {len(attempts)}")
        return "ok"

    return flaky, attempts


def test_immediate_retry_goes_straight_to_retrying(events):
    flaky, attempts = _flaky(1, retries=2)

    @flow
    def pipeline():
        return flaky(return_state=True)

    state = pipeline()
    assert state.result() == "ok"
    assert attempts == [1, 2]
    assert_transitions(
        events,
        state.state_details.task_run_id,
        ["Pending", "Running", "Retrying", "Completed"],
        kind="task-run",
    )
    final = events.for_resource(f"headwater.task-run.{state.state_details.task_run_id}")[-1]
    assert final.resource["headwater.run-count"] == "2"


def test_delayed_retry_passes_through_awaiting_retry(events):
    flaky, attempts = _flaky(2, retries=3, retry_delay_seconds=[0.01, 0.02])

    state = flaky(return_state=True)
    assert state.result() == "ok"
    assert attempts == [1, 2, 3]
    get_bus().flush(timeout=10)
    run_id = state.state_details.task_run_id
    assert_transitions(
        events,
        run_id,
        [
            "Pending",
            "Running",
            *["AwaitingRetry", "Retrying"] * 2,
            "Completed",
        ],
        kind="task-run",
    )
    awaiting = [
        e for e in events.for_resource(f"headwater.task-run.{run_id}") if "AwaitingRetry" in e.event
    ]
    assert awaiting[0].resource["headwater.state-message"] == (
        "Task run encountered an exception: ValueError: attempt 1"
    )


@pytest.mark.anyio
async def test_async_task_retries(events):
    calls = []

    @task(retries=1, retry_delay_seconds=0.01)
    async def flaky():
        calls.append(runtime_task_run.run_count)
        if len(calls) == 1:
            raise ValueError("once")
        return "ok"

    @flow
    async def pipeline():
        return await flaky(return_state=True)

    state = await pipeline()
    assert await state.result() == "ok"
    assert calls == [1, 2]
    assert_transitions(
        events,
        state.state_details.task_run_id,
        ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"],
        kind="task-run",
    )


def test_retries_exhausted_end_failed_with_the_last_error(events):
    flaky, attempts = _flaky(10, retries=2)

    @flow
    def pipeline():
        return flaky(return_state=True)

    state = pipeline(return_state=True).data
    assert state.is_failed()
    assert attempts == [1, 2, 3]
    with pytest.raises(ValueError, match="attempt 3"):
        state.result()
    assert_transitions(
        events,
        state.state_details.task_run_id,
        ["Pending", "Running", "Retrying", "Retrying", "Failed"],
        kind="task-run",
    )


def test_returned_failed_state_is_retried(events):
    results = iter([Failed(message="soft failure"), "fine"])

    @task(retries=1)
    def soft():
        return next(results)

    state = soft(return_state=True)
    assert state.is_completed()
    get_bus().flush(timeout=10)
    assert_transitions(
        events,
        state.state_details.task_run_id,
        ["Pending", "Running", "Retrying", "Completed"],
        kind="task-run",
    )
    results = iter([Failed(message="soft failure"), "fine"])
    assert soft() == "fine"


def test_retry_condition_false_stops_retries(events):
    seen = []

    def never(task_obj, task_run, state):
        seen.append((task_obj.name, task_run.run_count, state.is_failed()))
        return False

    flaky, attempts = _flaky(5, retries=3, retry_condition_fn=never)
    with pytest.raises(ValueError, match="attempt 1"):
        flaky()
    assert attempts == [1]
    assert seen == [("flaky", 1, True)]


def test_retry_condition_can_inspect_the_error(events):
    def only_value_errors(task_obj, task_run, state):
        return isinstance(state.data, ValueError)

    errors = iter([ValueError("retry me"), KeyError("stop"), None])

    @task(retries=5, retry_condition_fn=only_value_errors)
    def picky():
        error = next(errors)
        if error is not None:
            raise error
        return "done"

    with pytest.raises(KeyError, match="stop"):
        picky()


async def _allow_first_retry(task_obj, task_run, state):
    return task_run.run_count < 2


def test_async_retry_condition_in_a_sync_task(events):
    calls = []

    @task(retries=5, retry_condition_fn=_allow_first_retry)
    def flaky():
        calls.append(1)
        raise ValueError(f"call {len(calls)}")

    @flow
    def pipeline():
        flaky()

    with pytest.raises(ValueError, match="call 2"):
        pipeline()
    assert len(calls) == 2


@pytest.mark.anyio
async def test_async_retry_condition_in_an_async_task(events):
    calls = []

    @task(retries=5, retry_condition_fn=_allow_first_retry)
    async def flaky():
        calls.append(1)
        raise ValueError(f"call {len(calls)}")

    with pytest.raises(ValueError, match="call 2"):
        await flaky()
    assert len(calls) == 2


def test_raising_retry_condition_is_logged_and_not_retried(events, caplog):
    def broken_condition(task_obj, task_run, state):
        raise RuntimeError("condition broke")

    flaky, attempts = _flaky(5, retries=3, retry_condition_fn=broken_condition)
    with caplog.at_level(logging.ERROR, logger="headwater"), pytest.raises(ValueError):
        flaky()
    assert attempts == [1]
    records = [r for r in caplog.records if "retry_condition_fn" in r.getMessage()]
    assert len(records) == 1
    assert records[0].name.startswith("headwater")
    assert isinstance(records[0].exc_info[1], RuntimeError)


def test_on_failure_fires_once_after_retries_are_exhausted(events):
    failures = []
    flaky, attempts = _flaky(10, retries=2, on_failure=[lambda t, r, s: failures.append(s)])

    with pytest.raises(ValueError):
        flaky()
    assert attempts == [1, 2, 3]
    assert len(failures) == 1
    assert str(failures[0].data) == "attempt 3"


def test_on_failure_does_not_fire_when_a_retry_succeeds(events):
    failures, completions = [], []
    flaky, _ = _flaky(
        1,
        retries=1,
        on_failure=[lambda t, r, s: failures.append(s)],
        on_completion=[lambda t, r, s: completions.append(s)],
    )
    assert flaky() == "ok"
    assert failures == []
    assert len(completions) == 1


def test_on_running_fires_for_every_attempt(events):
    running = []
    flaky, _ = _flaky(2, retries=2, on_running=[lambda t, r, s: running.append(s.name)])
    assert flaky() == "ok"
    assert running == ["Running", "Retrying", "Retrying"]


def test_jittered_delays_still_retry(events):
    flaky, attempts = _flaky(1, retries=1, retry_delay_seconds=0.01, retry_jitter_factor=1)
    assert flaky() == "ok"
    assert attempts == [1, 2]
