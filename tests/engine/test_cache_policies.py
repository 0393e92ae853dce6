"""Caching: policy arithmetic, cache keys, Cached states and their events, across processes."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from results_helpers import run_script
from support import EventLog, assert_transitions

from headwater import flow, task
from headwater.cache_policies import (
    DEFAULT,
    FLOW_PARAMETERS,
    INPUTS,
    NO_CACHE,
    NONE,
    RUN_ID,
    TASK_SOURCE,
    CacheKeyFnPolicy,
    CompoundCachePolicy,
    Inputs,
)
from headwater.exceptions import CacheKeyError, CachePolicyWarning
from headwater.locking import MemoryLockManager
from headwater.settings import temporary_settings


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    with temporary_settings(home=tmp_path, database_url=None):
        yield tmp_path


class _Context:
    """What compute_key reads from a TaskRunContext."""

    def __init__(self, flow_run_id: Any = "flow-run-1", task_run_id: Any = "task-run-1") -> None:
        self.task_run = type("TaskRun", (), {"flow_run_id": flow_run_id, "id": task_run_id})()
        self.task = task(lambda x: x)


def _key(policy: Any, inputs: dict[str, Any], flow_parameters: Any = None, **context: Any) -> Any:
    return policy.compute_key(_Context(**context), inputs, flow_parameters or {})


# -- policy arithmetic and keys -----------------------------------------------------------------
def test_default_is_inputs_task_source_and_run_id() -> None:
    assert isinstance(DEFAULT, CompoundCachePolicy)
    assert DEFAULT == INPUTS + TASK_SOURCE + RUN_ID


def test_addition_is_flat_order_free_and_ignores_no_cache() -> None:
    left = (INPUTS + TASK_SOURCE) + RUN_ID
    right = RUN_ID + (TASK_SOURCE + INPUTS)
    assert len(left.policies) == 3  # type: ignore[attr-defined]
    assert _key(left, {"x": 1}) == _key(right, {"x": 1})
    assert INPUTS + NO_CACHE is INPUTS and NO_CACHE + INPUTS is INPUTS
    assert NONE is NO_CACHE and _key(NO_CACHE, {"x": 1}) is None


def test_subtracting_an_input_leaves_it_out_and_exclusions_merge() -> None:
    assert _key(INPUTS - "debug", {"x": 1, "debug": True}) == _key(INPUTS, {"x": 1})
    merged = (INPUTS - "a") + (INPUTS - "b") + RUN_ID
    inputs = [p for p in merged.policies if isinstance(p, Inputs)]  # type: ignore[attr-defined]
    assert len(inputs) == 1 and inputs[0].exclude == ["a", "b"]
    assert _key(DEFAULT - "a", {"a": 1, "b": 2}) == _key(DEFAULT - "a", {"a": 9, "b": 2})
    assert TASK_SOURCE - "x" is TASK_SOURCE
    with pytest.raises(TypeError):
        INPUTS - 3  # type: ignore[operator]


def test_keys_follow_inputs_run_id_and_flow_parameters() -> None:
    assert _key(INPUTS, {"x": 1}) == _key(INPUTS, {"x": 1}) != _key(INPUTS, {"x": 2})
    assert _key(INPUTS, {}) is None
    assert _key(RUN_ID, {}) == "flow-run-1"
    assert _key(RUN_ID, {}, flow_run_id=None) == "task-run-1"
    assert _key(FLOW_PARAMETERS, {}, {"day": 1}) != _key(FLOW_PARAMETERS, {}, {"day": 2})
    assert _key(FLOW_PARAMETERS, {}, {}) is None
    assert _key(INPUTS + RUN_ID, {}) is not None  # one non-None part is enough


def test_configure_conflicts_are_refused() -> None:
    serial = INPUTS.configure(isolation_level="SERIALIZABLE")
    assert serial.isolation_level == "SERIALIZABLE" and INPUTS.isolation_level is None
    assert (serial + RUN_ID).isolation_level == "SERIALIZABLE"
    with pytest.raises(ValueError, match="isolation_level"):
        serial + RUN_ID.configure(isolation_level="READ_COMMITTED")
    with pytest.raises(ValueError, match="lock_manager"):
        INPUTS.configure(lock_manager=MemoryLockManager()) + RUN_ID.configure(
            lock_manager=MemoryLockManager()
        )


def test_unhashable_input_is_a_clear_error_not_a_silent_miss(home: Path) -> None:
    @task(cache_policy=INPUTS)
    def use(lock: Any, n: int) -> int:
        return n

    with pytest.raises(CacheKeyError, match=r"input 'lock'.*NO_CACHE.*cache_key_fn") as caught:
        use(threading.Lock(), 1)
    assert isinstance(caught.value, ValueError)
    state = use(threading.Lock(), 1, return_state=True)
    assert state.is_failed() and "cache key" in (state.message or "")
    assert (INPUTS - "lock").compute_key(None, {"lock": threading.Lock(), "n": 1}, {})


# -- caching runs -------------------------------------------------------------------------------
def test_a_hit_is_a_cached_state_with_its_event(home: Path, events: EventLog) -> None:
    calls: list[int] = []

    @task(cache_policy=INPUTS)
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    @flow
    def pipeline() -> list[Any]:
        return [square(3, return_state=True), square(3, return_state=True), square(4)]

    first, second, other = pipeline()
    assert (first.name, second.name, other) == ("Completed", "Cached", 16)
    assert second.type == first.type and second.result() == 9
    assert second.state_details.cache_key == first.state_details.cache_key
    assert calls == [3, 4]
    ids = (first.state_details.task_run_id, second.state_details.task_run_id)
    assert_transitions(events, ids[0], ["Pending", "Running", "Completed"], kind="task-run")
    assert_transitions(events, ids[1], ["Pending", "Cached"], kind="task-run")


def test_async_tasks_cache_too(home: Path) -> None:
    import asyncio

    @task(cache_policy=INPUTS)
    async def double(x: int) -> int:
        return x * 2

    @flow
    async def pipeline() -> list[str]:
        first = await double(2, return_state=True)
        second = await double(2, return_state=True)
        return [first.name, second.name]

    assert asyncio.run(pipeline()) == ["Completed", "Cached"]


def test_task_source_tells_tasks_apart(home: Path) -> None:
    @task(cache_policy=INPUTS + TASK_SOURCE)
    def one(x: int) -> int:
        return x + 1

    @task(cache_policy=INPUTS + TASK_SOURCE)
    def two(x: int) -> int:
        return x + 2

    assert (one(1), two(1)) == (2, 3)


def test_cache_key_fn_wins_over_a_policy_with_a_warning(home: Path) -> None:
    with pytest.warns(CachePolicyWarning, match="cache_key_fn"):

        @task(cache_policy=INPUTS, cache_key_fn=lambda context, parameters: "fixed")
        def make(x: int) -> int:
            return x

    assert isinstance(make.cache_policy, CacheKeyFnPolicy)
    assert make(1) == 1
    assert make(2) == 1  # same key: cached


def test_persist_result_false_disables_caching_with_a_warning(home: Path) -> None:
    with pytest.warns(CachePolicyWarning, match="persist_result is False"):

        @task(cache_policy=INPUTS, persist_result=False)
        def make(x: int) -> int:
            return x

    assert make.cache_policy is NO_CACHE
    assert make(1, return_state=True).name == make(1, return_state=True).name == "Completed"
    assert not (home / "storage").exists()


def test_expired_records_are_recomputed(home: Path) -> None:
    calls: list[int] = []

    def make(x: int) -> int:
        calls.append(x)
        return x

    expired = task(make, cache_policy=INPUTS, cache_expiration=datetime.timedelta(0))
    lasting = task(make, cache_policy=INPUTS, cache_expiration=datetime.timedelta(hours=1))
    assert [expired(1, return_state=True).name for _ in range(2)] == ["Completed", "Completed"]
    states = [lasting(1, return_state=True) for _ in range(2)]
    assert [state.name for state in states] == ["Completed", "Cached"]
    assert states[1].state_details.cache_expiration is not None
    assert calls == [1, 1, 1]


def test_refresh_cache_recomputes_and_overwrites(home: Path) -> None:
    values = iter([1, 2, 3])

    def make() -> int:
        return next(values)

    cached = task(make, cache_key_fn=lambda context, parameters: "k")
    refreshing = task(make, cache_key_fn=lambda context, parameters: "k", refresh_cache=True)
    assert cached() == 1
    assert refreshing() == 2
    assert cached() == 2
    with temporary_settings(tasks_refresh_cache=True):
        assert cached() == 3


def test_default_no_cache_setting(home: Path) -> None:
    with temporary_settings(tasks_default_no_cache=True, results_persist_by_default=True):

        @task
        def make(x: int) -> int:
            return x

        assert make.cache_policy is NO_CACHE
        state = make(1, return_state=True)
        assert make(1, return_state=True).name == "Completed"
        assert state.state_details.cache_key is None
        assert (home / "storage" / str(state.state_details.task_run_id)).exists()


def test_flow_retries_reuse_tasks_that_completed(home: Path) -> None:
    calls: list[str] = []

    @task
    def extract() -> int:
        calls.append("extract")
        return 1

    @flow(persist_result=True, retries=1)
    def pipeline() -> int:
        value = extract()
        if len(calls) == 1:
            calls.append("fail")
            raise RuntimeError("first attempt fails after the task")
        return value

    assert pipeline() == 1
    assert calls == ["extract", "fail"]


CACHED_IN_A_CHILD = """
from headwater import flow, task
from headwater.cache_policies import INPUTS

@task(cache_policy=INPUTS)
def expensive(x):
    return x * 100

@flow
def pipeline():
    state = expensive(7, return_state=True)
    return state.name, state.result()

print(*pipeline())
"""


def test_a_result_cached_in_one_process_is_a_hit_in_another(home: Path) -> None:
    assert run_script(CACHED_IN_A_CHILD, home) == "Completed 700"
    assert run_script(CACHED_IN_A_CHILD, home) == "Cached 700"
