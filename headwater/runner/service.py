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
from headwater.engine.control import TerminationSignal
from headwater.engine.startup import ensure_started
from headwater.lifecycle import ServiceSpec
from headwater.runner import child
from headwater.runner.deployment import RunnerDeployment
from headwater.runner.launcher import Runner
from headwater.settings import Settings, get_settings

__all__ = ["RUNNER", "aserve", "get_runner", "serve", "start_runner", "stop_runner"]

logger = logging.getLogger("headwater.runner")


def _key(settings: Settings) -> tuple[Any, ...]:
    return (settings.home, settings.database_url)


async def _open(settings: Settings, explicit: bool) -> Runner:
    return Runner(settings)


def _on_sigterm(runner: Runner) -> None:
    # SIGTERM while serve() does not hold the main thread (aserve, an embedding app): stop
    # the runs' processes and pause here, then make the resulting states durable.
    from headwater.events.bus import get_bus
    from headwater.events.service import get_service_loop

    grace = runner.settings.runner_cancel_grace
    service = get_service_loop()
    if service.thread is not None:
        try:
            service.run_coroutine(runner.aclose(grace + 10.0), timeout=grace + 15.0)
        except (TimeoutError, RuntimeError) as exc:
            logger.warning("the runner did not stop cleanly on SIGTERM: %s", exc)
    get_bus().flush(timeout=10.0)


RUNNER: ServiceSpec[Runner] = ServiceSpec(
    name="runner",
    key=_key,
    open=_open,
    on_sigterm=_on_sigterm,
    stops_before=("automations", "persistence", "forwarder"),
    logger=logger,
)
"""The scheduler and launcher of this process's served deployments."""


_serving_in_main_thread = False


def _stop_serving() -> None:
    """SIGTERM while serve() blocks the main thread: return from serve() as from Ctrl-C."""
    if _serving_in_main_thread:
        raise TerminationSignal()


lifecycle.register_termination_hook(_stop_serving)


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
    timeout = get_settings().runner_cancel_grace + 15.0
    runner = get_runner()
    if runner is not None:
        # Stop it before the lifecycle does: its last steps (pausing, recording runs)
        # emit events, whose hooks may start services, which takes the lifecycle's lock
        # that lifecycle.stop holds while it waits.
        from headwater.events.service import get_service_loop

        try:
            get_service_loop().run_coroutine(runner.aclose(timeout), timeout=timeout + 5.0)
        except (TimeoutError, RuntimeError) as exc:
            logger.warning("the runner did not stop cleanly: %s", exc)
    lifecycle.stop(RUNNER, timeout=timeout)


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
        f"Serving {len(stored)} deployment(s). To start a run now:\n{names}\nStop with Ctrl-C.",
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
    if child.loading_entrypoint:
        logger.warning(
            "serve() was called while a deployment's run loaded its flow (the module calls"
            ' it at import); ignored here. Put it under `if __name__ == "__main__":`'
        )
        return
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
    global _serving_in_main_thread
    stopped = threading.Event()
    in_main = threading.current_thread() is threading.main_thread()
    try:
        _serving_in_main_thread = in_main
        while not stopped.wait(0.5):
            if get_runner() is None:
                break  # stopped by stop_runner() elsewhere
    except (KeyboardInterrupt, TerminationSignal) as exc:
        reason = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else "SIGTERM"
        logger.info("serve: %s, stopping", reason)
    finally:
        _serving_in_main_thread = False
        stop_runner()


def _wait_closed(runner: Runner) -> None:
    from headwater.events.service import get_service_loop

    get_service_loop().run_coroutine(runner.wait_closed())


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
    runner = get_runner()
    try:
        if runner is not None:
            await anyio.to_thread.run_sync(_wait_closed, runner, abandon_on_cancel=True)
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(stop_runner)
