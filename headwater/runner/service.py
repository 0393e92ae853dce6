"""``serve()``: run deployments from this process, as a service of :mod:`headwater.lifecycle`.

The runner (:mod:`headwater.runner.launcher`) is the ``runner`` service: it starts when
``serve`` is called, and stops before persistence (its last state changes are still
written). ``serve`` blocks the calling thread until Ctrl-C, or until SIGTERM, which the
lifecycle handles once for every service: the runner stops its runs' processes and, with
``pause_on_shutdown``, pauses its deployments, then the process exits.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

import anyio

from headwater import lifecycle
from headwater.deployments.model import DeploymentDefinition
from headwater.engine.startup import ensure_started
from headwater.lifecycle import ServiceSpec
from headwater.runner.deployment import RunnerDeployment
from headwater.runner.launcher import Runner
from headwater.settings import Settings, get_settings

__all__ = ["RUNNER", "aserve", "get_runner", "serve", "start_runner", "stop_runner"]

logger = logging.getLogger("headwater.runner")


def _key(settings: Settings) -> tuple[Any, ...]:
    return (settings.home, settings.database_url)


async def _open(settings: Settings, explicit: bool) -> Runner:
    return Runner(settings)


RUNNER: ServiceSpec[Runner] = ServiceSpec(
    name="runner",
    key=_key,
    open=_open,
    stops_before=("automations", "persistence", "forwarder"),
    logger=logger,
)
"""The scheduler and launcher of this process's served deployments."""


def get_runner() -> Runner | None:
    return lifecycle.get(RUNNER)


def start_runner(
    deployments: Iterable[DeploymentDefinition],
    *,
    limit: int | None = None,
    pause_on_shutdown: bool = True,
) -> Runner:
    """Start (or reuse) this process's runner and give it ``deployments``."""
    ensure_started()  # persistence first: the runner's state changes are written
    runner = lifecycle.ensure(RUNNER, explicit=True)
    assert runner is not None
    settings = get_settings()
    runner.configure(
        limit=limit if limit is not None else (settings.runner_process_limit or None),
        pause_on_shutdown=pause_on_shutdown,
    )
    runner.add(list(deployments))
    return runner


def stop_runner() -> None:
    lifecycle.stop(RUNNER, timeout=get_settings().runner_cancel_grace + 15.0)


def _register(deployments: tuple[Any, ...]) -> list[DeploymentDefinition]:
    stored = []
    for deployment in deployments:
        if not isinstance(deployment, RunnerDeployment):
            raise TypeError(
                f"serve() takes deployments made by flow.to_deployment(...), got {deployment!r}"
            )
        stored.append(deployment.apply(paused=False))  # serving a deployment un-pauses it
    return stored


def _starting_message(stored: list[DeploymentDefinition]) -> None:
    names = "\n".join(f"  headwater deployment run '{d.full_name}'" for d in stored)
    print(
        f"Serving {len(stored)} deployment(s). To start a run now:\n{names}\n"
        "Stop with Ctrl-C.",
        flush=True,
    )


def serve(
    *deployments: RunnerDeployment,
    limit: int | None = None,
    pause_on_shutdown: bool = True,
    print_starting_message: bool = True,
) -> None:
    """Register ``deployments`` and run their scheduled and requested runs until stopped.

    Raises:
        RuntimeError: called from async code (use ``await aserve(...)``).
    """
    try:
        anyio.get_current_task()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("serve() blocks; from async code use `await aserve(...)`")
    stored = _register(deployments)
    start_runner(stored, limit=limit, pause_on_shutdown=pause_on_shutdown)
    if print_starting_message:
        _starting_message(stored)
    stopped = threading.Event()
    try:
        while not stopped.wait(0.5):
            if get_runner() is None:
                break  # stopped by SIGTERM or by stop_runner() elsewhere
    except KeyboardInterrupt:
        logger.info("serve: interrupted, stopping")
    finally:
        stop_runner()


async def aserve(
    *deployments: RunnerDeployment,
    limit: int | None = None,
    pause_on_shutdown: bool = True,
    print_starting_message: bool = True,
) -> None:
    """:func:`serve` for async code: returns when cancelled (the runner then stops)."""
    stored = await anyio.to_thread.run_sync(_register, deployments)
    await anyio.to_thread.run_sync(
        lambda: start_runner(stored, limit=limit, pause_on_shutdown=pause_on_shutdown)
    )
    if print_starting_message:
        _starting_message(stored)
    try:
        while get_runner() is not None:
            await anyio.sleep(0.5)
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(stop_runner)
