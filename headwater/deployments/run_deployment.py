"""``run_deployment``: start a run of a deployment from anywhere, and wait for its end.

The run is created Scheduled (due now, or at ``scheduled_time``); a serve process of the
deployment picks it up at once (it watches the database). Unless ``timeout=0``, the call
then waits for the run's final state: woken by the database changing (``PRAGMA
data_version`` on a connection of its own, a read of shared memory every
:data:`WATCH_INTERVAL`), never by a poll of seconds. A run that is not final when the
timeout passes is returned as it is, as in Prefect; a failed run does not raise (look at
``flow_run.state``).

Called inside a flow run (``as_subflow=True``), the new run is a child of the current one
and a task run named after the deployment stands for it in the parent, ending as it ends.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable
from typing import Any

import anyio
import anyio.to_thread

from headwater.deployments.backend import CreateRun, get_backend
from headwater.deployments.runs import RunRow, read_run
from headwater.deployments.store import DeploymentRef
from headwater.engine.asyncutils import in_running_loop
from headwater.engine.context import flow_run_context
from headwater.engine.naming import generate_slug
from headwater.engine.runs import TaskRun, set_state
from headwater.engine.states import Completed, Failed, Running, StateType
from headwater.exceptions import DeploymentValidationError
from headwater.settings import get_settings
from headwater.storage.data_version import DataVersionWatch
from headwater.storage.sqlite import database_path

__all__ = ["WATCH_INTERVAL", "arun_deployment", "run_deployment", "wait_for_run"]

WATCH_INTERVAL = 0.02
_UTC = datetime.timezone.utc


def _start(
    name: DeploymentRef,
    parameters: dict[str, Any] | None,
    scheduled_time: datetime.datetime | None,
    flow_run_name: str | None,
    tags: Iterable[str] | None,
    idempotency_key: str | None,
    as_subflow: bool,
) -> tuple[RunRow, TaskRun | None]:
    backend = get_backend()
    deployment = backend.read(name)
    parent = flow_run_context.get() if as_subflow else None
    placeholder: TaskRun | None = None
    if parent is not None:
        slug = generate_slug()
        placeholder = TaskRun(
            f"headwater.deployments.run_deployment.{deployment.full_name}",
            deployment.full_name,
            f"{deployment.full_name}-{slug}",
            tuple(sorted(set(tags or ()))),
            parent.flow_run,
            dict(parameters or {}),
        )
    run, _ = backend.create_run(
        deployment,
        CreateRun(
            parameters=parameters,
            scheduled_time=scheduled_time,
            flow_run_name=flow_run_name,
            tags=sorted(set(tags or ())),
            idempotency_key=idempotency_key,
            parent_flow_run_id=None if parent is None else parent.flow_run.id,
            parent_task_run_id=None if placeholder is None else placeholder.id,
        ),
    )
    if placeholder is not None:
        set_state(placeholder, Running(message=f"Waiting for flow run {run.id}"))
    return run, placeholder


def _finish(placeholder: TaskRun | None, run: RunRow) -> None:
    if placeholder is None:
        return
    if not run.is_final:
        set_state(placeholder, Completed(message=f"Flow run {run.id} is {run.state_name}"))
    elif run.state_type is StateType.COMPLETED:
        set_state(placeholder, Completed(message=f"Flow run {run.id} completed"))
    else:
        set_state(placeholder, Failed(message=f"Flow run {run.id} ended {run.state_name}"))


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and timeout < 0:
        raise DeploymentValidationError(f"timeout: expected seconds >= 0 or None, got {timeout}")


def wait_for_run(flow_run_id: uuid.UUID, timeout: float | None = None) -> RunRow:
    """The run once it is final, or as it is when ``timeout`` seconds have passed."""
    return anyio.run(_await_run, flow_run_id, timeout)


def run_deployment(
    name: DeploymentRef,
    parameters: dict[str, Any] | None = None,
    scheduled_time: datetime.datetime | None = None,
    flow_run_name: str | None = None,
    timeout: float | None = None,
    poll_interval: float | None = None,
    tags: Iterable[str] | None = None,
    idempotency_key: str | None = None,
    as_subflow: bool = True,
) -> Any:
    """Create a run of the deployment ``"flow/deployment"`` (or id) and wait for it.

    In async code it returns an awaitable (``await run_deployment(...)``), as Prefect's.

    Args:
        parameters: merged over the deployment's defaults; checked against the flow.
        scheduled_time: when the run is due (default now).
        flow_run_name: the run's name; ``{parameter}`` fields are filled in.
        timeout: seconds to wait for the final state; 0 returns at once, None waits on.
        poll_interval: accepted for Prefect compatibility; waiting is pushed.
        tags: added to the deployment's tags.
        idempotency_key: a second call with the same key returns the same run.
        as_subflow: inside a flow run, link the new run to it.

    Returns:
        The flow run (``.id``, ``.name``, ``.state``...).

    Raises:
        DeploymentNotFound: no such deployment.
        DeploymentValidationError: the parameters do not fit the flow; a bad timeout.
    """
    if in_running_loop():
        return arun_deployment(
            name,
            parameters,
            scheduled_time,
            flow_run_name,
            timeout,
            poll_interval,
            tags,
            idempotency_key,
            as_subflow,
        )
    _check_timeout(timeout)
    run, placeholder = _start(
        name, parameters, scheduled_time, flow_run_name, tags, idempotency_key, as_subflow
    )
    if timeout != 0:
        run = wait_for_run(run.id, timeout)
    _finish(placeholder, run)
    return run


async def arun_deployment(
    name: DeploymentRef,
    parameters: dict[str, Any] | None = None,
    scheduled_time: datetime.datetime | None = None,
    flow_run_name: str | None = None,
    timeout: float | None = None,  # noqa: ASYNC109 - Prefect's signature
    poll_interval: float | None = None,
    tags: Iterable[str] | None = None,
    idempotency_key: str | None = None,
    as_subflow: bool = True,
) -> RunRow:
    """:func:`run_deployment` for async code."""
    _check_timeout(timeout)
    context = flow_run_context.get()

    def start() -> tuple[RunRow, TaskRun | None]:
        token = flow_run_context.set(context)
        try:
            return _start(
                name, parameters, scheduled_time, flow_run_name, tags, idempotency_key, as_subflow
            )
        finally:
            flow_run_context.reset(token)

    run, placeholder = await anyio.to_thread.run_sync(start)
    if timeout != 0:
        run = await _await_run(run.id, timeout)
    _finish(placeholder, run)
    return run


async def _await_remote_run(flow_run_id: uuid.UUID, wait: float | None) -> RunRow:
    """Through a server: woken by the feed's events about the run, then read once."""
    from headwater.client.subscriber import EventSubscriber
    from headwater.events.filters import EventFilter, EventResourceFilter

    backend = get_backend()
    event_filter = EventFilter(
        resource=EventResourceFilter(id=[f"headwater.flow-run.{flow_run_id}"])
    )
    run = await anyio.to_thread.run_sync(backend.read_run, flow_run_id)
    if run is None:
        raise DeploymentValidationError(f"no flow run {flow_run_id}")
    with anyio.move_on_after(wait):
        async with EventSubscriber(get_settings(), event_filter, backfill=False) as events:
            # read again now that nothing can be missed
            found = await anyio.to_thread.run_sync(backend.read_run, flow_run_id)
            run = found or run
            if run.is_final:
                return run
            async for _ in events:
                found = await anyio.to_thread.run_sync(backend.read_run, flow_run_id)
                run = found or run
                if run.is_final:
                    return run
    return run


async def _await_run(flow_run_id: uuid.UUID, wait: float | None) -> RunRow:
    if get_settings().api_url:
        return await _await_remote_run(flow_run_id, wait)
    watch = DataVersionWatch(database_path(get_settings()))  # before the read: nothing missed
    try:
        run = await anyio.to_thread.run_sync(read_run, flow_run_id)
        if run is None:
            raise DeploymentValidationError(f"no flow run {flow_run_id}")
        with anyio.move_on_after(wait):
            while not run.is_final:
                await watch.next_change(WATCH_INTERVAL)
                found = await anyio.to_thread.run_sync(read_run, flow_run_id)
                if found is None:
                    raise DeploymentValidationError(f"flow run {flow_run_id} was deleted")
                run = found
        return run
    finally:
        watch.close()
