"""The reactor: evaluates every automation's trigger against the bus, and acts.

It lives on headwater's service loop (DESIGN.md, "Execution model") as a lossless bus
subscriber with four tasks in one task group:

- **consume**: takes events in batches, looks up candidate triggers by event name
  (:mod:`~headwater.automations.index`), matches resources and runs the pure bucket
  arithmetic (:mod:`~headwater.automations.triggers`). Transition records are turned into
  events only when some trigger is interested in their name.
- **deadlines**: one scheduler (:mod:`~headwater.automations.timers`) for the ends of
  proactive windows, the expiry of old reactive buckets and the periodic resync.
- **commit**: checkpoints changed trigger state (batched, every 0.25 s), and before a
  firing's actions run, commits it first; then emits ``automation.triggered`` /
  ``.resolved`` and queues the actions.
- **actions**: the :class:`~headwater.automations.runner.ActionRunner` workers.

Where it runs: in the server process when there is one (the server calls
:func:`start_reactor`); otherwise in-process, started by the engine's start hook through
:func:`ensure_reactor` when enabled automations exist. At exit it is flushed (every event
published is evaluated, queued actions finish, state is checkpointed) before persistence.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
from msgspec import to_builtins

from headwater.automations import store
from headwater.automations.checkpoint import (
    dump_entry,
    entry_key,
    restore_entry,
)
from headwater.automations.index import TriggerIndex
from headwater.automations.model import EventTrigger, parse_automation
from headwater.automations.ownership import abandoned_owners, new_owner, retire
from headwater.automations.runner import ActionRunner, TriggeredAction, automation_resource
from headwater.automations.timers import Deadlines
from headwater.automations.triggers import (
    EventTriggerNode,
    Firing,
    Outcome,
    TriggerNode,
    compile_trigger,
    iter_nodes,
    on_deadline,
    on_event,
    start,
)
from headwater.events.bus import EventBus, Subscription
from headwater.events.emit import emit_event
from headwater.events.schema import RESOURCE_ID, RESOURCE_ROLE, Event
from headwater.exceptions import HeadwaterError, StorageError
from headwater.storage.database import Database

if TYPE_CHECKING:
    from headwater.automations.model import AutomationDefinition
    from headwater.settings import Settings

__all__ = ["Reactor"]

logger = logging.getLogger("headwater.automations")

CHECKPOINT_INTERVAL = 0.25
SUBSCRIPTION_BUFFER = 10_000
_LIFECYCLE = frozenset(f"headwater.automation.{kind}" for kind in ("created", "updated", "deleted"))
_RESYNC = object()


class Loaded:
    """An automation being evaluated: its definition and its compiled trigger tree."""

    __slots__ = ("automation", "root", "nodes", "trigger_type", "posture")

    def __init__(self, automation: AutomationDefinition, minimum_within: float) -> None:
        self.automation = automation
        self.root: TriggerNode = compile_trigger(automation.trigger, minimum_within)
        self.nodes = {node.path: node for node in iter_nodes(self.root)}
        for node in self.nodes.values():
            node.automation_id = str(automation.id)
        trigger = automation.trigger
        self.trigger_type = str(trigger.__struct_config__.tag)
        self.posture = trigger.posture.value if isinstance(trigger, EventTrigger) else None


class Reactor:
    """Evaluates automations for one bus and one database; see the module docstring.

    Build it with :meth:`open` on the loop that will run it, then run :meth:`serve` there.
    """

    def __init__(
        self, settings: Settings, bus: EventBus, database: Database, clock: Any = time.time
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.database = database
        self.clock = clock
        self.owner = new_owner()
        self.subscription: Subscription | None = None
        self.runner = ActionRunner(
            workers=settings.automations_action_workers,
            queue_size=settings.automations_action_queue_size,
            retries=settings.automations_action_retries,
            database=database,
        )
        self.loaded: dict[uuid.UUID, Loaded] = {}
        self.index = TriggerIndex()
        self.deadlines = Deadlines(clock)
        self.evaluated = 0
        self._versions: dict[uuid.UUID, str] = {}
        self._dirty: dict[tuple[str, str, str, str], tuple[TriggerNode, str, Any]] = {}
        self._forget: set[uuid.UUID] = set()
        self._pending: list[tuple[Loaded, Firing]] = []
        self._wanted = anyio.Event()
        self._urgent = anyio.Event()
        self._committing = False
        self._group: anyio.abc.TaskGroup | None = None
        self._stopped = anyio.Event()

    @classmethod
    async def open(cls, settings: Settings, bus: EventBus, clock: Any = time.time) -> Reactor:
        """Open the database, subscribe (events are buffered from now on), load automations
        and adopt abandoned trigger state.

        Raises:
            StorageError: the database cannot be used.
        """
        database = await Database.open(settings=settings)
        try:
            reactor = cls(settings, bus, database, clock)
            reactor.subscription = bus.subscribe(
                lossless=True,
                buffer_size=SUBSCRIPTION_BUFFER,
                name="automations",
                materialise=False,
            )
            await reactor._load()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await database.close()
            raise
        return reactor

    # -- loading ------------------------------------------------------------------------

    async def _load(self) -> None:
        self._versions = await store.automation_versions(self.database)
        for automation in await store.read_automations(self.database, enabled_only=True):
            self._install(automation, forget_state=False, start_windows=False)
        self.index = self._build_index()
        owners = await store.state_owners(self.database)
        rows = await store.adopt_state(self.database, self.owner, abandoned_owners(owners))
        orphans = set()
        for automation_id, path, kind, key, data in rows:
            loaded = self.loaded.get(uuid.UUID(automation_id))
            node = None if loaded is None else loaded.nodes.get(path)
            if node is None:
                orphans.add(uuid.UUID(automation_id))
                continue
            deadline = restore_entry(node, kind, key, data)
            if deadline is not None:
                self.deadlines.add(deadline[0], (deadline[1], deadline[2]))
        self._forget |= orphans
        out = Outcome()
        for loaded in self.loaded.values():
            start(loaded.root, self.clock(), out)
        self._apply(out)
        self.deadlines.add(self.clock() + self.settings.automations_resync_interval, _RESYNC)
        logger.debug(
            "automations reactor: %d automations, %d state rows adopted",
            len(self.loaded),
            len(rows),
        )

    def _install(
        self,
        automation: AutomationDefinition,
        *,
        forget_state: bool = True,
        start_windows: bool = True,
    ) -> None:
        assert automation.id is not None
        self._uninstall(automation.id, forget_state=forget_state)
        if not automation.enabled:
            return
        loaded = Loaded(automation, self.settings.automations_minimum_proactive_within)
        self.loaded[automation.id] = loaded
        if start_windows:
            self.index = self._build_index()
            out = Outcome()
            start(loaded.root, self.clock(), out)
            self._apply(out)

    def _uninstall(self, automation_id: uuid.UUID, *, forget_state: bool = True) -> None:
        if self.loaded.pop(automation_id, None) is not None:
            self.index = self._build_index()
        if forget_state:
            self._forget.add(automation_id)
            self._wanted.set()

    def _build_index(self) -> TriggerIndex:
        return TriggerIndex(
            node
            for loaded in self.loaded.values()
            for node in loaded.nodes.values()
            if isinstance(node, EventTriggerNode)
        )

    def _is_current(self, node: TriggerNode) -> bool:
        loaded = self.loaded.get(uuid.UUID(node.automation_id))
        return loaded is not None and loaded.nodes.get(node.path) is node

    # -- serving ------------------------------------------------------------------------

    async def serve(self) -> None:
        """Evaluate, schedule, checkpoint and act until cancelled or closed."""
        try:
            async with anyio.create_task_group() as group:
                self._group = group
                group.start_soon(self.runner.run)
                group.start_soon(self.deadlines.run, self._on_deadlines)
                group.start_soon(self._commit_loop)
                await self._consume()
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                if self.subscription is not None:
                    self.subscription.close()
                try:
                    await self._commit()
                    await store.release_state(self.database, self.owner)
                except StorageError as exc:
                    logger.warning("automations: the last checkpoint failed: %s", exc)
                finally:
                    retire(self.owner)
                    await self.database.close()
                    self._stopped.set()

    async def aclose(self, grace: float = 10.0) -> None:
        """Evaluate what was published, let queued actions finish (for up to ``grace``
        seconds), checkpoint and stop."""
        with anyio.move_on_after(grace):
            await self.bus.aflush(grace)
            while self._pending or self._committing:
                self._urgent.set()
                self._wanted.set()
                await anyio.sleep(0.01)
            if not await self.runner.drain(grace):
                logger.warning("automations: stopping with actions still running")
        if self.subscription is not None:
            self.subscription.close()
        with anyio.move_on_after(grace):
            await self._stopped.wait()

    async def _consume(self) -> None:
        subscription = self.subscription
        assert subscription is not None
        while True:
            items = await subscription.get_batch(max_items=512, max_latency=0)
            if not items:
                return
            try:
                self.evaluate(items)
            except Exception:
                logger.exception("automations: evaluating %d events failed", len(items))
            finally:
                subscription.ack()

    def evaluate(self, items: list[Any]) -> None:
        """Apply a batch of bus items (events or compact records) to every trigger."""
        out = Outcome()
        wall = self.clock()
        index = self.index
        for item in items:
            name = item.event if type(item) is Event else getattr(item, "event_name", None)
            if name is None:
                item = item.to_event()
                name = item.event
            if name in _LIFECYCLE:
                self._on_lifecycle(item.to_event())
                index = self.index
            candidates = index.candidates(name, item.resource_id)
            if not candidates:
                continue
            event = item.to_event()
            moment = min(event.occurred.timestamp(), wall)
            for node in candidates:
                if node.covers(event):
                    on_event(node, event, moment, out)
            self.evaluated += 1
        self._apply(out)

    def _on_lifecycle(self, event: Event) -> None:
        data = event.payload.get("automation")
        try:
            automation = parse_automation(data) if isinstance(data, dict) else None
        except HeadwaterError:
            automation = None
        if automation is None or automation.id is None:
            return
        if event.event.endswith(".deleted"):
            self._uninstall(automation.id)
        else:
            self._install(automation)

    def _apply(self, out: Outcome) -> None:
        for when, event_node, bucket_key in out.deadlines:
            self.deadlines.add(when, (event_node, bucket_key))
        for node, kind, key in out.touched:
            self._dirty[(node.automation_id, node.path, kind, entry_key(kind, key))] = (
                node,
                kind,
                key,
            )
        for firing in out.firings:
            loaded = self.loaded.get(uuid.UUID(firing.node.automation_id))
            if loaded is not None and loaded.root is firing.node:
                self._pending.append((loaded, firing))
        if self._pending:
            self._urgent.set()
        if self._dirty or self._pending:
            self._wanted.set()

    def _on_deadlines(self, due: list[Any], now: float) -> None:
        out = Outcome()
        for item in due:
            if item is _RESYNC:
                if self._group is not None:
                    self._group.start_soon(self._resync)
                continue
            node, key = item
            if self._is_current(node):
                on_deadline(node, key, now, out)
        self._apply(out)

    async def _resync(self) -> None:
        try:
            versions = await store.automation_versions(self.database)
            for automation_id in set(self.loaded) - set(versions):
                self._uninstall(automation_id)
            for automation_id, updated in versions.items():
                if self._versions.get(automation_id) == updated:
                    continue
                automation = await store.read_automation(automation_id, self.database)
                current = self.loaded.get(automation_id)
                changed = current is None or current.automation != automation
                if changed and (automation.enabled or current is not None):
                    self._install(automation)
            self._versions = versions
        except HeadwaterError as exc:
            logger.warning("automations: resync failed: %s", exc)
        finally:
            interval = self.settings.automations_resync_interval
            self.deadlines.add(self.clock() + interval, _RESYNC)

    # -- checkpoint, then act -----------------------------------------------------------

    async def _commit_loop(self) -> None:
        while True:
            await self._wanted.wait()
            if not self._pending:
                with anyio.move_on_after(CHECKPOINT_INTERVAL):
                    await self._urgent.wait()
            await self._commit()

    async def _commit(self) -> None:
        self._wanted = anyio.Event()
        self._urgent = anyio.Event()
        dirty, self._dirty = self._dirty, {}
        pending, self._pending = self._pending, []
        forget, self._forget = self._forget, set()
        upserts, deletes = [], []
        for row_key, (node, kind, key) in dirty.items():
            if not self._is_current(node):
                continue
            data = dump_entry(node, kind, key)
            if data is None:
                deletes.append(row_key)
            else:
                upserts.append((*row_key, data))
        self._committing = True
        try:
            for automation_id in forget:
                await store.forget_state(self.database, automation_id)
            if upserts or deletes:
                await store.write_state(self.database, self.owner, upserts, deletes)
        except StorageError as exc:
            logger.warning("automations: checkpoint failed, acting anyway: %s", exc)
        finally:
            self._committing = False
            for loaded, firing in pending:
                try:
                    self._dispatch(loaded, firing)
                except Exception:
                    logger.exception("automations: acting on %r failed", loaded.automation.name)

    def _dispatch(self, loaded: Loaded, firing: Firing) -> None:
        automation = loaded.automation
        related: list[Mapping[str, str]] = []
        if firing.event is not None:
            related.append(
                {
                    RESOURCE_ID: f"headwater.event.{firing.event.id}",
                    RESOURCE_ROLE: "triggering-event",
                }
            )
        state_event = emit_event(
            f"headwater.automation.{firing.state}",
            resource=automation_resource(automation, posture=loaded.posture),
            related=related,
            payload={
                "triggering_labels": firing.labels,
                "triggering_event": None if firing.event is None else to_builtins(firing.event),
            },
            follows=firing.event,
        )
        jobs = [(firing.event, action) for action in automation.actions]
        extra = (
            automation.actions_on_trigger
            if firing.state == "triggered"
            else automation.actions_on_resolve
        )
        jobs.extend((state_event, action) for action in extra)
        for index, (event, action) in enumerate(jobs):
            self.runner.submit(
                TriggeredAction(
                    automation,
                    action,
                    index,
                    firing,
                    event,
                    state_event,
                    loaded.trigger_type,
                    loaded.posture,
                )
            )
