"""The runner: the scheduler and the launcher of one serve process.

It holds the deployments this process serves and does three things for them, on the
service loop (:mod:`headwater.lifecycle`):

- **schedules**: keeps each active schedule's next runs waiting (Prefect's scheduler
  rules; :func:`~headwater.deployments.runs.schedule_runs`), at start, when a deployment
  is added, and every ``scheduler_loop_seconds``; marks runs Late;
- **launches**: claims due runs (Scheduled → Pending, at most once across processes) and
  starts each in its own subprocess (``python -m headwater.runner.child``), up to
  ``limit`` at once; a run beyond the limit waits, Scheduled, and starts when a slot frees;
- **watches**: a run asked to cancel (Cancelling) gets its process stopped (``cancel`` on
  its stdin, SIGTERM, then SIGKILL after ``runner_cancel_grace``) and ends Cancelled; a
  process that exits without a final state ends Crashed with its exit status.

Pick-up is pushed: the runner wakes when the database changes (``PRAGMA data_version``
on a connection of its own, checked every :data:`WATCH_INTERVAL`; no query runs unless
another connection committed), at the moment the next waiting run is due, and when a
child exits. ``runner_poll_frequency`` is only a safety net.
"""

from __future__ import annotations

import datetime
import logging
import os
import signal
import socket
import sys
import time
import uuid
from typing import Any

import anyio
import anyio.abc
import msgspec

from headwater.deployments.backend import LocalBackend, get_backend
from headwater.deployments.model import DeploymentDefinition
from headwater.deployments.runs import Claim, SchedulingPolicy
from headwater.engine.states import StateType
from headwater.ids import new_uuid
from headwater.runner.child import ORDER_VARIABLE, ChildOrder
from headwater.settings import Settings
from headwater.storage.data_version import DataVersionWatch
from headwater.storage.sqlite import database_path

__all__ = ["Runner", "WATCH_INTERVAL"]

logger = logging.getLogger("headwater.runner")

WATCH_INTERVAL = 0.02
"""Seconds between checks of the database's data version (a read of shared memory)."""
_UTC = datetime.timezone.utc


def _now() -> datetime.datetime:
    return datetime.datetime.now(_UTC)


def _exit_explanation(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"Flow run process was killed by {name} (exit status {code})"
    if code == 0:
        return "Flow run process exited (status 0) without reporting a final state"
    return f"Flow run process exited with status {code} without reporting a final state"


_IN_PROGRESS = (StateType.PENDING, StateType.RUNNING, StateType.CANCELLING)


class _Child:
    __slots__ = ("process", "run_id", "stopping", "done", "superseded")

    def __init__(self, process: anyio.abc.Process, run_id: uuid.UUID) -> None:
        self.process = process
        self.run_id = run_id
        self.stopping: str | None = None  # why its process is being stopped
        self.done = anyio.Event()  # its end is recorded
        self.superseded = False  # its run (suspended, resumed) was given a new process


class Runner:
    """The scheduler and launcher of this process (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.backend = get_backend(settings)
        self.id = f"{socket.gethostname()}:{os.getpid()}:{new_uuid()}"
        self.limit: int | None = settings.runner_process_limit or None
        self.pause_on_shutdown = True
        self._deployments: dict[str, DeploymentDefinition] = {}
        self._children: dict[uuid.UUID, _Child] = {}
        self._wake = anyio.Event()
        self._schedule_now = True
        self._refresh_now = False
        self._stamp: Any = None
        self._closing = False
        self._closed = anyio.Event()
        self._group: anyio.abc.TaskGroup | None = None
        self._loop: Any = None

    # -- called from other threads ----------------------------------------------------------
    def add(self, deployments: list[DeploymentDefinition]) -> None:
        """Serve these deployments too (thread-safe)."""
        self._call(self._add, list(deployments))

    def configure(self, *, limit: int | None, pause_on_shutdown: bool) -> None:
        self._call(self._configure, limit, pause_on_shutdown)

    def _call(self, fn: Any, *args: Any) -> None:
        from headwater.events.service import get_service_loop

        get_service_loop().call_soon(fn, *args)

    def _add(self, deployments: list[DeploymentDefinition]) -> None:
        for deployment in deployments:
            self._deployments[str(deployment.id)] = deployment
        self._schedule_now = True
        self._wake.set()

    def _configure(self, limit: int | None, pause_on_shutdown: bool) -> None:
        self.limit = limit
        self.pause_on_shutdown = pause_on_shutdown
        self._wake.set()

    # -- the service --------------------------------------------------------------------------
    async def serve(self) -> None:
        try:
            async with anyio.create_task_group() as group:
                self._group = group
                if isinstance(self.backend, LocalBackend):
                    group.start_soon(self._watch_database)
                else:
                    group.start_soon(self._watch_feed)
                await self._main()
                group.cancel_scope.cancel()
        finally:
            self._closed.set()

    async def aclose(self, grace: float) -> None:
        """Stop: end the children (SIGTERM, then SIGKILL), pause deployments if asked."""
        self._closing = True
        self._wake.set()
        with anyio.move_on_after(grace):
            await self._closed.wait()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def _main(self) -> None:
        settings = self.settings
        next_schedule = 0.0
        next_late = 0.0
        while not self._closing:
            # a new event before the work: a wake that comes during it is kept for the wait
            self._wake = anyio.Event()
            now_mono = time.monotonic()
            try:
                if await self._definitions_changed():
                    await anyio.to_thread.run_sync(self._refresh)
                    self._schedule_now = True
                if self._schedule_now or now_mono >= next_schedule:
                    self._schedule_now = False
                    await anyio.to_thread.run_sync(self._schedule)
                    next_schedule = now_mono + settings.scheduler_loop_seconds
                if now_mono >= next_late:
                    await anyio.to_thread.run_sync(self._mark_late)
                    next_late = now_mono + min(5.0, settings.late_runs_after_seconds)
                due = await self._next_due()
                if due is not None and due <= _now() and not self._at_capacity():
                    await self._launch_due()
                    due = await self._next_due()
                if self._children:
                    await self._stop_cancelled()
            except Exception:
                logger.exception("runner: a scheduling or launching step failed; retrying")
                due = None
            wait = min(settings.runner_poll_frequency, next_schedule - time.monotonic())
            wait = min(wait, next_late - time.monotonic())
            if due is not None and not self._at_capacity():
                wait = min(wait, (due - _now()).total_seconds())
            if self._closing:
                break
            with anyio.move_on_after(max(wait, 0.0)):
                await self._wake.wait()
        await self._shutdown()

    async def _next_due(self) -> datetime.datetime | None:
        if not self._deployments:
            return None
        return await anyio.to_thread.run_sync(
            self.backend.next_due, list(self._deployments.values())
        )

    def _at_capacity(self) -> bool:
        return self.limit is not None and len(self._children) >= self.limit

    async def _definitions_changed(self) -> bool:
        """Someone else paused, resumed, edited or deleted a deployment (CLI, automation)."""
        if self._refresh_now:
            self._refresh_now = False
            return True
        if not self._deployments:
            return False
        stamp = await anyio.to_thread.run_sync(self.backend.stamp)
        changed = stamp is not None and self._stamp is not None and stamp != self._stamp
        self._stamp = stamp
        return changed

    def _refresh(self) -> None:
        """Serve the deployments as they are stored now; forget the deleted ones."""
        current = {str(d.id): d for d in self.backend.deployments()}
        for deployment_id, served in list(self._deployments.items()):
            stored = current.get(deployment_id)
            if stored is None:
                logger.warning("deployment %s was deleted; no longer serving it", served.full_name)
                del self._deployments[deployment_id]
            else:
                self._deployments[deployment_id] = stored

    def _schedule(self) -> None:
        settings = self.settings
        policy = SchedulingPolicy(
            min_runs=settings.scheduler_min_runs,
            max_runs=settings.scheduler_max_runs,
            min_scheduled_time=settings.scheduler_min_scheduled_time,
            max_scheduled_time=settings.scheduler_max_scheduled_time,
        )
        made = self.backend.schedule(list(self._deployments.values()), policy)
        if made:
            logger.debug("scheduled %d run(s)", made)

    def _mark_late(self) -> None:
        self.backend.mark_late(
            list(self._deployments.values()),
            datetime.timedelta(seconds=self.settings.late_runs_after_seconds),
        )

    async def _launch_due(self) -> None:
        if self._closing or not self._deployments:
            return
        capacity = 1_000_000 if self.limit is None else self.limit - len(self._children)
        if capacity <= 0:
            return
        claims = await anyio.to_thread.run_sync(
            self.backend.claim, list(self._deployments.values()), self.id, capacity
        )
        for claim in claims:
            await self._start_child(claim)

    async def _start_child(self, claim: Claim) -> None:
        deployment = claim.deployment
        order = ChildOrder(
            entrypoint=deployment.entrypoint, path=deployment.path, adoption=claim.adoption
        )
        env = dict(os.environ)
        env[ORDER_VARIABLE] = msgspec.json.encode(order).decode()
        run_id = claim.adoption.flow_run_id
        try:
            process = await anyio.open_process(
                [sys.executable, "-m", "headwater.runner.child"],
                stdin=-1,  # subprocess.PIPE: where a cancel request is written
                stdout=None,
                stderr=None,
                env=env,
                cwd=deployment.path or None,
            )
        except OSError as exc:
            await anyio.to_thread.run_sync(
                self.backend.end_run,
                run_id,
                StateType.CRASHED,
                "Crashed",
                f"Could not start the flow run's process: {exc}",
            )
            return
        child = _Child(process, run_id)
        earlier = self._children.get(run_id)
        if earlier is not None:
            earlier.superseded = True  # its exit is no longer the run's to record
        self._children[run_id] = child
        logger.info(
            "started flow run %s of %s in process %d", run_id, deployment.full_name, process.pid
        )
        assert self._group is not None
        self._group.start_soon(self._wait_child, child)

    async def _wait_child(self, child: _Child) -> None:
        code = await child.process.wait()
        if child.process.stdin is not None:
            with anyio.CancelScope(shield=True):
                try:
                    await child.process.stdin.aclose()
                except (OSError, anyio.BrokenResourceError):
                    pass
        try:
            with anyio.CancelScope(shield=True):
                run = await anyio.to_thread.run_sync(self.backend.read_run, child.run_id)
                # Only a run this process was still running is this exit's to end: one that
                # was suspended (and maybe resumed since, waiting or claimed again) is not.
                if (
                    run is not None
                    and not child.superseded
                    and run.launcher == self.id
                    and run.state_type in _IN_PROGRESS
                ):
                    if child.stopping is not None and run.state_type is StateType.CANCELLING:
                        await anyio.to_thread.run_sync(
                            self.backend.end_run,
                            child.run_id,
                            StateType.CANCELLED,
                            "Cancelled",
                            child.stopping,
                        )
                    else:
                        await anyio.to_thread.run_sync(
                            self.backend.end_run,
                            child.run_id,
                            StateType.CRASHED,
                            "Crashed",
                            _exit_explanation(code),
                        )
        except Exception:
            logger.exception("runner: could not record the end of flow run %s", child.run_id)
        finally:
            if self._children.get(child.run_id) is child:  # a resumed run may have a new one
                del self._children[child.run_id]
            child.done.set()
            self._wake.set()  # a slot is free

    async def _stop_cancelled(self) -> None:
        cancelling = await anyio.to_thread.run_sync(
            self.backend.runs_to_stop, self.id, list(self._children)
        )
        for run in cancelling:
            child = self._children.get(run.id)
            if child is not None and child.stopping is None:
                verb = "suspend" if run.state_type is StateType.PAUSED else "cancel"
                message = run.state_message or "Cancelled on request"
                assert self._group is not None
                self._group.start_soon(self._stop_child, child, verb, message)

    async def _stop_child(self, child: _Child, verb: str, message: str) -> None:
        """``cancel``/``suspend`` on stdin and SIGTERM; SIGKILL once the grace is over."""
        child.stopping = message
        process = child.process
        if process.returncode is not None:
            return
        if process.stdin is not None:
            try:
                line = message.replace("\n", " ")
                await process.stdin.send(f"{verb} {line}\n".encode())
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass
        try:
            process.terminate()
        except ProcessLookupError:
            return
        with anyio.move_on_after(self.settings.runner_cancel_grace):
            await process.wait()
        if process.returncode is None:
            logger.warning(
                "flow run %s did not stop within %.0f s of SIGTERM; killing it",
                child.run_id,
                self.settings.runner_cancel_grace,
            )
            try:
                process.kill()
            except ProcessLookupError:
                pass

    async def _shutdown(self) -> None:
        children = list(self._children.values())
        for child in children:
            if child.process.returncode is None:
                try:
                    child.process.terminate()  # the run ends Crashed: serve is stopping
                except ProcessLookupError:
                    pass
        with anyio.move_on_after(self.settings.runner_cancel_grace):
            for child in children:
                await child.done.wait()
        for child in list(self._children.values()):
            try:
                child.process.kill()
            except ProcessLookupError:
                pass
        with anyio.move_on_after(5.0):
            for child in children:
                await child.done.wait()
        if self.pause_on_shutdown:
            for deployment in list(self._deployments.values()):
                try:
                    await anyio.to_thread.run_sync(self.backend.set_paused, deployment.id, True)
                except Exception as exc:
                    logger.warning("could not pause %s at shutdown: %s", deployment.full_name, exc)

    async def _watch_feed(self) -> None:
        """Wake the main loop on the server's events about this runner's deployments.

        The subscription is remade when the set of deployments changes; a dropped
        connection is retried by the subscriber, and the safety re-check covers the gap.
        """
        from headwater.client.subscriber import EventSubscriber
        from headwater.events.filters import (
            EventAnyResourceFilter,
            EventFilter,
            EventNameFilter,
        )

        while True:
            ids = sorted(self._deployments)
            if not ids:
                await anyio.sleep(0.05)
                continue
            resources = [f"headwater.deployment.{deployment_id}" for deployment_id in ids]
            # runs of these deployments (related) and changes to them (the resource)
            event_filter = EventFilter(
                event=EventNameFilter(prefix=["headwater.flow-run.", "headwater.deployment."]),
                any_resource=EventAnyResourceFilter(id=resources[:1000]),
            )
            try:
                async with EventSubscriber(
                    self.settings, event_filter, backfill=False
                ) as subscription:
                    async for event in subscription:
                        if getattr(event, "event", "").startswith("headwater.deployment."):
                            self._refresh_now = True
                        self._wake.set()
                        if sorted(self._deployments) != ids:
                            break
            except Exception as exc:
                logger.warning("runner: the server's feed is unavailable (%s); retrying", exc)
                await anyio.sleep(min(self.settings.runner_poll_frequency, 2.0))

    async def _watch_database(self) -> None:
        """Wake the main loop when another connection commits to the database."""
        watch = await anyio.to_thread.run_sync(DataVersionWatch, database_path(self.settings))
        try:
            while True:
                await watch.next_change(WATCH_INTERVAL)
                self._wake.set()
        finally:
            watch.close()
