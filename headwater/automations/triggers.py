"""Trigger evaluation, pure: bucket arithmetic as functions of (state, event, now).

Nothing here does I/O, reads a clock or imports asyncio (STYLE.md §3): the reactor passes
the time in and acts on what comes back (:class:`Outcome`: firings to act on, state rows
to checkpoint, deadlines to schedule). Tests drive it with a fake clock.

The semantics are Prefect 3's (``prefect/server/events/triggers.py``), restated:

- An event trigger keeps one open bucket ``[start, end)`` with a ``count`` per bucketing
  key (the values of its ``for_each`` labels, sorted by label; a missing label is "").
- An event matching ``after`` opens the bucket at the event's time (count -1 when it also
  matches ``expect``, so it cannot satisfy itself). With no ``after``, the first expected
  event opens a bucket that starts :data:`LOOKBACK` in the past, to take in late events.
- An expected event inside the window (or any time, for a Reactive trigger with
  ``within=0``) adds one. Events older than the bucket's start are ignored.
- Reactive fires as soon as ``count >= threshold`` and drops the bucket; without ``after``
  the next bucket starts at ``max(end, now)``, so it fires at most once per window.
- Proactive fires when the window has closed with ``count < threshold``; the reactor
  schedules a deadline at the bucket's end (no sweep, no polling).
- Composite triggers collect child firings: ``compound`` fires once ``require`` distinct
  children fired within ``within`` ("any": at once); ``sequence`` once every child has
  fired, the latest firing of each in the declared order.

Headwater's changes, for proactive triggers (complaints #5 and #6):

- An event matching both ``after`` and ``expect`` restarts the window from that event
  (count 0), so "no heartbeat for 90 s after the last one" fires 90 s after the last one
  (Prefect keeps the first bucket, which loses heartbeats between windows).
- A proactive trigger with ``after`` opens windows only on ``after`` events; Prefect also
  opens one for the whole trigger at each sweep when there is no ``for_each``.
- After a proactive firing for a key, the next expected event for that key *resolves* it
  (``automation.resolved``, ``actions_on_resolve``); Prefect OSS never resolves.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable
from typing import Any

from headwater.automations.matching import (
    CompiledSpec,
    NamePattern,
    compile_related,
    compile_spec,
    covers_resources,
    names_match,
    parse_name_pattern,
)
from headwater.automations.model import (
    CompoundTrigger,
    EventTrigger,
    Posture,
    SequenceTrigger,
    Trigger,
)
from headwater.events.schema import Event

__all__ = [
    "LOOKBACK",
    "EXPIRED_BUCKET_BUFFER",
    "Bucket",
    "Firing",
    "Outcome",
    "EventTriggerNode",
    "CompositeNode",
    "TriggerNode",
    "compile_trigger",
    "iter_nodes",
    "on_event",
    "on_deadline",
    "start",
]

LOOKBACK = 15 * 60.0
"""Seconds before the first expected event that a bucket opened without ``after`` starts."""

EXPIRED_BUCKET_BUFFER = 60.0
"""Seconds after a reactive bucket's end before it is forgotten (Prefect's sweep buffer)."""

MAX_UNRESOLVED = 1000
"""Proactive firings remembered per trigger, awaiting resolution; the oldest go first."""

BucketKey = tuple[str, ...]


class Bucket:
    """One open window of an event trigger for one bucketing key."""

    __slots__ = ("start", "end", "count", "last_event")

    def __init__(self, start: float, end: float, count: int, last_event: Event | None) -> None:
        self.start = start
        self.end = end
        self.count = count
        self.last_event = last_event

    def __repr__(self) -> str:
        return f"Bucket({self.start:.3f}..{self.end:.3f}, count={self.count})"


class Firing:
    """A trigger fired (or resolved): what the reactor acts on.

    Attributes:
        node: the trigger that fired.
        state: ``"triggered"`` or ``"resolved"``.
        at: when (seconds since the epoch; the event's time for reactive firings).
        labels: the bucket's ``for_each`` label values.
        event: the triggering event (the bucket's last event for proactive firings).
        children: the child firings that made a composite trigger fire.
    """

    __slots__ = ("node", "state", "at", "labels", "event", "children", "id")

    def __init__(
        self,
        node: TriggerNode,
        state: str,
        at: float,
        labels: dict[str, str],
        event: Event | None,
        children: list[Firing] | None = None,
    ) -> None:
        self.node = node
        self.state = state
        self.at = at
        self.labels = labels
        self.event = event
        self.children = children or []
        self.id = uuid.uuid4()

    def __repr__(self) -> str:
        return f"Firing({self.node.path!r}, {self.state}, at={self.at:.3f}, labels={self.labels})"


class Outcome:
    """What one evaluation produced.

    Attributes:
        firings: root-level firings (the automation fired or resolved), in order.
        touched: state entries that changed, as ``(node, kind, key)`` to checkpoint.
        deadlines: ``(when, node, key)`` the reactor must call :func:`on_deadline` at.
    """

    __slots__ = ("firings", "touched", "deadlines")

    def __init__(self) -> None:
        self.firings: list[Firing] = []
        self.touched: set[tuple[TriggerNode, str, Any]] = set()
        self.deadlines: list[tuple[float, EventTriggerNode, BucketKey]] = []


class EventTriggerNode:
    """A compiled event trigger and its state (buckets, unresolved firings)."""

    def __init__(
        self,
        trigger: EventTrigger,
        path: str,
        parent: CompositeNode | None,
        minimum_proactive_within: float,
    ) -> None:
        self.trigger = trigger
        self.path = path
        self.parent = parent
        self.automation_id = ""  # set by whoever loads the automation
        self.proactive = trigger.posture is Posture.Proactive
        within = float(trigger.within)  # type: ignore[arg-type]
        if self.proactive:
            within = max(within, minimum_proactive_within)
        self.within = within
        self.threshold = trigger.threshold
        self.immediate = not self.proactive and within == 0
        self.expect: tuple[NamePattern, ...] = tuple(map(parse_name_pattern, trigger.expect))
        self.after: tuple[NamePattern, ...] = tuple(map(parse_name_pattern, trigger.after))
        self.match: CompiledSpec = compile_spec(trigger.match)
        self.related: tuple[CompiledSpec, ...] = compile_related(trigger.match_related)
        self.for_each: tuple[str, ...] = tuple(sorted(trigger.for_each))
        self.buckets: dict[BucketKey, Bucket] = {}
        self.unresolved: dict[BucketKey, float] = {}

    def expects(self, name: str) -> bool:
        return not self.expect or names_match(self.expect, name)

    def starts_after(self, name: str) -> bool:
        return names_match(self.after, name)

    def covers(self, event: Event) -> bool:
        """Whether the event's name and resources concern this trigger at all."""
        name = event.event
        if not (self.expects(name) or (self.after and self.starts_after(name))):
            return False
        return covers_resources(self.match, self.related, event)

    def bucketing_key(self, event: Event) -> BucketKey:
        return tuple(event.find_resource_label(label) or "" for label in self.for_each)

    def labels(self, key: BucketKey) -> dict[str, str]:
        return dict(zip(self.for_each, key, strict=False))

    def __repr__(self) -> str:
        return f"<EventTriggerNode {self.path}>"


class CompositeNode:
    """A compiled compound or sequence trigger and its stored child firings."""

    def __init__(
        self,
        trigger: CompoundTrigger | SequenceTrigger,
        path: str,
        parent: CompositeNode | None,
        minimum_proactive_within: float,
    ) -> None:
        self.trigger = trigger
        self.path = path
        self.parent = parent
        self.automation_id = ""
        self.sequence = isinstance(trigger, SequenceTrigger)
        self.required = len(trigger.triggers) if self.sequence else trigger.required  # type: ignore[union-attr]
        self.within: float | None = None if trigger.within is None else float(trigger.within)  # type: ignore[arg-type]
        self.children: list[TriggerNode] = [
            _compile(child, f"{path}.{index}", self, minimum_proactive_within)
            for index, child in enumerate(trigger.triggers)
        ]
        self.order = {child.path: index for index, child in enumerate(self.children)}
        self.firings: dict[str, Firing] = {}

    def __repr__(self) -> str:
        return f"<CompositeNode {self.path}>"


TriggerNode = EventTriggerNode | CompositeNode


def _compile(
    trigger: Trigger, path: str, parent: CompositeNode | None, minimum: float
) -> TriggerNode:
    if isinstance(trigger, EventTrigger):
        return EventTriggerNode(trigger, path, parent, minimum)
    return CompositeNode(trigger, path, parent, minimum)


def compile_trigger(trigger: Trigger, minimum_proactive_within: float = 10.0) -> TriggerNode:
    """Compile an automation's trigger tree; node paths are ``"0"``, ``"0.1"``, ..."""
    return _compile(trigger, "0", None, minimum_proactive_within)


def iter_nodes(node: TriggerNode) -> Iterable[TriggerNode]:
    """Every node of a tree, parents first."""
    yield node
    if isinstance(node, CompositeNode):
        for child in node.children:
            yield from iter_nodes(child)


# -- event triggers -----------------------------------------------------------------------


def _open(node: EventTriggerNode, key: BucketKey, bucket: Bucket, out: Outcome) -> Bucket:
    node.buckets[key] = bucket
    out.touched.add((node, "bucket", key))
    deadline = bucket.end if node.proactive else bucket.end + EXPIRED_BUCKET_BUFFER
    out.deadlines.append((deadline, node, key))
    return bucket


def on_event(node: EventTriggerNode, event: Event, now: float, out: Outcome) -> None:
    """Apply one event (already known to be covered by ``node``) at time ``now``.

    ``now`` is the event's time (its ``occurred``, not later than the wall clock).
    """
    name = event.event
    key = node.bucketing_key(event)
    expects = node.expects(name)
    bucket: Bucket | None = None
    if expects and node.proactive and key in node.unresolved:
        del node.unresolved[key]
        out.touched.add((node, "fired", key))
        _fire(node, Firing(node, "resolved", now, node.labels(key), event), out)
    if node.after and node.starts_after(name):
        existing = node.buckets.get(key)
        if node.proactive and expects:
            if existing is None or now >= existing.start:
                _open(node, key, Bucket(now, now + node.within, 0, event), out)
            return
        if existing is None:
            bucket = _open(
                node, key, Bucket(now, now + node.within, -1 if expects else 0, event), out
            )
        else:
            bucket = existing
    if bucket is None and not node.after and expects:
        bucket = node.buckets.get(key)
        if bucket is None:
            bucket = _open(node, key, Bucket(now - LOOKBACK, now + node.within, 0, event), out)
    if not expects:
        return
    if bucket is None:
        bucket = node.buckets.get(key)
        if bucket is None:
            return
    _evaluate(node, key, bucket, now, event, out)


def on_deadline(node: EventTriggerNode, key: BucketKey, now: float, out: Outcome) -> None:
    """A deadline scheduled for ``(node, key)`` has come; stale deadlines do nothing."""
    bucket = node.buckets.get(key)
    if bucket is None:
        return
    if node.proactive:
        if bucket.end <= now:
            _evaluate(node, key, bucket, now, None, out)
    elif bucket.end + EXPIRED_BUCKET_BUFFER <= now:
        del node.buckets[key]
        out.touched.add((node, "bucket", key))


def start(node: TriggerNode, now: float, out: Outcome) -> None:
    """Open the standing window of every proactive trigger that watches the whole stream.

    A proactive trigger with neither ``after`` nor ``for_each`` expects its events in every
    window from the moment it is loaded ("at least one X every 10 minutes").
    """
    for each in iter_nodes(node):
        if not isinstance(each, EventTriggerNode) or not each.proactive:
            continue
        if not each.after and not each.for_each and () not in each.buckets:
            _open(each, (), Bucket(now, now + each.within, 0, None), out)


def _evaluate(
    node: EventTriggerNode,
    key: BucketKey,
    bucket: Bucket,
    now: float,
    event: Event | None,
    out: Outcome,
) -> None:
    count = 1 if event is not None else 0
    if now < bucket.start:
        return  # a late event, or one after a reactive firing within the same window
    if count and (node.immediate or bucket.start <= now < bucket.end):
        bucket.count += count
        bucket.last_event = event
        count = 0
        out.touched.add((node, "bucket", key))
    ready = not node.proactive or bucket.end <= now
    meets = bucket.count >= node.threshold if not node.proactive else bucket.count < node.threshold
    fired = ready and meets
    if fired:
        del node.buckets[key]
        out.touched.add((node, "bucket", key))
        if node.proactive and node.parent is None:
            node.unresolved[key] = now
            out.touched.add((node, "fired", key))
            while len(node.unresolved) > MAX_UNRESOLVED:
                oldest = next(iter(node.unresolved))
                del node.unresolved[oldest]
                out.touched.add((node, "fired", oldest))
        labels = node.labels(key)
        _fire(node, Firing(node, "triggered", now, labels, event or bucket.last_event), out)
    elif now < bucket.end:
        return
    # The window is over (or spent): start the next one, unless `after` must open it.
    if node.after:
        if node.buckets.pop(key, None) is not None:
            out.touched.add((node, "bucket", key))
        return
    if node.within == 0:
        return
    begin = max(bucket.end, now)
    carried = None if fired else bucket.last_event
    if not node.proactive and count > 0:
        fresh = _open(node, key, Bucket(begin, begin + node.within, 0, carried), out)
        _evaluate(node, key, fresh, now, event, out)
    else:
        _open(node, key, Bucket(begin, begin + node.within, count, carried), out)


# -- composite triggers -------------------------------------------------------------------


def _fire(node: TriggerNode, firing: Firing, out: Outcome) -> None:
    parent = node.parent
    if parent is None:
        out.firings.append(firing)
    elif firing.state == "triggered":
        _child_fired(parent, firing, out)


def _child_fired(node: CompositeNode, firing: Firing, out: Outcome) -> None:
    if node.required == 1 and not node.sequence:
        _fire(node, Firing(node, "triggered", firing.at, {}, firing.event, [firing]), out)
        return
    if node.within is not None:
        horizon = firing.at - node.within
        for path in [p for p, f in node.firings.items() if f.at < horizon]:
            del node.firings[path]
            out.touched.add((node, "child", path))
    node.firings[firing.node.path] = firing
    out.touched.add((node, "child", firing.node.path))
    if not _ready(node):
        return
    firings = sorted(node.firings.values(), key=lambda f: node.order[f.node.path])
    for path in node.firings:
        out.touched.add((node, "child", path))
    node.firings.clear()
    latest = max(firings, key=lambda f: f.at)
    _fire(node, Firing(node, "triggered", latest.at, {}, latest.event, firings), out)


def _ready(node: CompositeNode) -> bool:
    firings = node.firings
    if len(firings) < node.required:
        return False
    if not node.sequence:
        return True
    times = [firings[child.path].at for child in node.children]
    return all(earlier <= later for earlier, later in itertools.pairwise(times))
