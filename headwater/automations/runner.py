"""Running actions off the reactor's path: a bounded queue, N workers, bounded retries.

The reactor hands each firing's actions to :meth:`ActionRunner.submit`, which never waits:
a full queue fails the action at once (with an ``action.failed`` event saying so) rather
than slow trigger evaluation. Workers run actions concurrently; one that fails for a
transient reason (network, HTTP 5xx, a notification not delivered) is tried again after
a doubling delay, up to ``retries`` more times. Each invocation emits
``headwater.automation.action.triggered`` and then ``.executed`` or ``.failed``
(reference §4.7).

Nothing handed to the runner vanishes: when it stops (the reactor's bounded drain at exit
or server shutdown ran out), a running action is interrupted and an action still queued is
not started, and each gets its ``action.failed`` event saying so (written by persistence,
which stops after the reactor).
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from headwater.automations.actions import ActionContext, perform
from headwater.events.emit import emit_event
from headwater.events.schema import RESOURCE_ID, RESOURCE_NAME, RESOURCE_ROLE, Event
from headwater.exceptions import ActionFailed, HeadwaterError

if TYPE_CHECKING:
    from headwater.automations.model import Action, AutomationDefinition
    from headwater.automations.triggers import Firing
    from headwater.storage.database import Database

__all__ = ["ActionRunner", "TriggeredAction", "automation_resource"]

logger = logging.getLogger("headwater.automations")

STOPPED_QUEUED = "not run: the process stopped before this action's turn"
STOPPED_RUNNING = "interrupted: the process stopped while this action ran"


def automation_resource(
    automation: AutomationDefinition, trigger_type: str | None = None, posture: str | None = None
) -> dict[str, str]:
    """The ``headwater.automation.<id>`` resource of the events an automation emits."""
    resource = {
        RESOURCE_ID: f"headwater.automation.{automation.id}",
        RESOURCE_NAME: automation.name,
    }
    if trigger_type is not None:
        resource["headwater.trigger-type"] = trigger_type
    if posture is not None:
        resource["headwater.posture"] = posture
    return resource


class TriggeredAction:
    """One action to run for one firing.

    Attributes:
        automation: the automation that fired.
        action: the action; ``index`` its position in the firing's list of actions.
        firing: the firing.
        event: the action's triggering event (the state event for ``actions_on_*``).
        state_event: the ``automation.triggered`` / ``.resolved`` event of the firing.
        trigger_type, posture: labels for the action events' resource.
    """

    __slots__ = (
        "automation",
        "action",
        "index",
        "firing",
        "event",
        "state_event",
        "trigger_type",
        "posture",
        "invocation",
    )

    def __init__(
        self,
        automation: AutomationDefinition,
        action: Action,
        index: int,
        firing: Firing,
        event: Event | None,
        state_event: Event | None,
        trigger_type: str,
        posture: str | None,
    ) -> None:
        self.automation = automation
        self.action = action
        self.index = index
        self.firing = firing
        self.event = event
        self.state_event = state_event
        self.trigger_type = trigger_type
        self.posture = posture
        self.invocation = uuid.uuid4()


class ActionRunner:
    """A bounded queue of :class:`TriggeredAction` and the workers that run them.

    Args:
        workers: actions run at once.
        queue_size: actions waiting, at most.
        retries: further attempts after a retryable failure.
        backoff: seconds before the first retry; doubles each time.
        database: for actions that read runs or change automations.
    """

    def __init__(
        self,
        *,
        workers: int = 4,
        queue_size: int = 1000,
        retries: int = 2,
        backoff: float = 0.5,
        database: Database | None = None,
    ) -> None:
        self.workers = workers
        self.retries = retries
        self.backoff = backoff
        self.database = database
        self._send: MemoryObjectSendStream[TriggeredAction]
        self._receive: MemoryObjectReceiveStream[TriggeredAction]
        self._send, self._receive = anyio.create_memory_object_stream(max_buffer_size=queue_size)
        self._outstanding = 0
        self._idle = anyio.Event()
        self._idle.set()

    @property
    def outstanding(self) -> int:
        """Actions queued or running."""
        return self._outstanding

    def submit(self, job: TriggeredAction) -> bool:
        """Queue ``job`` without waiting; False (and an ``action.failed`` event) when full."""
        try:
            self._send.send_nowait(job)
        except anyio.WouldBlock:
            logger.warning(
                "automation %r: action %d (%s) dropped, the action queue is full",
                job.automation.name,
                job.index,
                job.action.type,
            )
            self._emit(job, "failed", {"reason": "the action queue is full"}, None)
            return False
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            return False
        if self._outstanding == 0:
            self._idle = anyio.Event()
        self._outstanding += 1
        return True

    async def run(self) -> None:
        """Run the workers until cancelled; then the queue is closed, and every action still
        in it is recorded as failed (not run)."""
        try:
            async with anyio.create_task_group() as group:
                for _ in range(self.workers):
                    group.start_soon(self._work)
        finally:
            self._send.close()
            self._abandon_queued()
            self._receive.close()

    def _abandon_queued(self) -> None:
        while True:
            try:
                job = self._receive.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                return
            self._outstanding -= 1
            self._emit(job, "failed", {"reason": STOPPED_QUEUED, "attempts": 0}, None)

    async def drain(self, limit: float) -> bool:
        """Wait until nothing is queued or running; False after ``limit`` seconds."""
        with anyio.move_on_after(limit):
            await self._idle.wait()
            return True
        return False

    async def _work(self) -> None:
        async for job in self._receive:
            try:
                await self._run(job)
            except Exception:
                logger.exception("automation %r: action %d crashed", job.automation.name, job.index)
            finally:
                self._outstanding -= 1
                if self._outstanding == 0:
                    self._idle.set()

    async def _run(self, job: TriggeredAction) -> None:
        started = self._emit(job, "triggered", {}, job.event)
        attempt = 0
        while True:
            context = ActionContext(
                job.automation, job.action, job.firing, job.event, self.database
            )
            try:
                details = await perform(context)
            except anyio.get_cancelled_exc_class():
                payload = {"reason": STOPPED_RUNNING, "attempts": attempt + 1}
                self._emit(job, "failed", payload, started, context.related)
                raise
            except ActionFailed as exc:
                if exc.retryable and attempt < self.retries:
                    await anyio.sleep(self.backoff * math.pow(2, attempt))
                    attempt += 1
                    continue
                payload = {"reason": exc.reason, **exc.details, "attempts": attempt + 1}
                self._emit(job, "failed", payload, started, context.related)
                logger.warning(
                    "automation %r: action %d (%s) failed: %s",
                    job.automation.name,
                    job.index,
                    job.action.type,
                    exc.reason,
                )
                return
            except HeadwaterError as exc:
                payload = {"reason": str(exc), "attempts": attempt + 1}
                self._emit(job, "failed", payload, started, context.related)
                return
            details["attempts"] = attempt + 1
            self._emit(job, "executed", details, started, context.related)
            return

    def _emit(
        self,
        job: TriggeredAction,
        outcome: str,
        details: dict[str, Any],
        follows: Event | None,
        touched: list[dict[str, str]] | None = None,
    ) -> Event | None:
        related: list[Mapping[str, str]] = []
        if job.state_event is not None:
            related.append(
                {
                    RESOURCE_ID: f"headwater.event.{job.state_event.id}",
                    RESOURCE_ROLE: "automation-triggered-event",
                }
            )
        if job.event is not None:
            related.append(
                {RESOURCE_ID: f"headwater.event.{job.event.id}", RESOURCE_ROLE: "triggering-event"}
            )
        related.extend(touched or ())
        payload = {
            "action_index": job.index,
            "action_type": job.action.type,
            "invocation": str(job.invocation),
            **details,
        }
        try:
            return emit_event(
                f"headwater.automation.action.{outcome}",
                resource=automation_resource(job.automation, job.trigger_type, job.posture),
                related=related,
                payload=payload,
                follows=follows,
            )
        except HeadwaterError:
            logger.exception("automation %r: cannot emit action.%s", job.automation.name, outcome)
            return None
