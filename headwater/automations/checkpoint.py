"""Trigger state as database rows, and who owns them.

A reactor checkpoints what it holds in memory so that a restart neither forgets an open
window nor fires twice:

- every changed entry (an open bucket, an unresolved proactive firing, a stored child
  firing of a composite trigger) becomes one ``automation_state`` row, written in batches
  off the evaluation path, and *before* the actions of a firing run (commit, then act: a
  crash can lose a firing's actions, never repeat them);
- rows carry their owner (see :mod:`headwater.automations.ownership`), so two live reactors
  sharing a database never adopt, and fire, each other's windows.

The functions here turn entries into JSON and back: pure, no I/O.
"""

from __future__ import annotations

from typing import Any

import msgspec

from headwater.automations.triggers import (
    EXPIRED_BUCKET_BUFFER,
    Bucket,
    CompositeNode,
    EventTriggerNode,
    Firing,
    TriggerNode,
)
from headwater.events.schema import Event, event_from_dict

__all__ = ["dump_entry", "restore_entry", "entry_key"]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode


def entry_key(kind: str, key: Any) -> str:
    """The ``key`` column: a bucketing key as a JSON list, a child path as it is."""
    return key if kind == "child" else _encode(list(key)).decode()


def _event_data(event: Event | None) -> Any:
    return None if event is None else msgspec.to_builtins(event)


def _event(data: Any) -> Event | None:
    return None if data is None else event_from_dict(data)


def dump_entry(node: TriggerNode, kind: str, key: Any) -> str | None:
    """The JSON of one entry as it is now, or None when it no longer exists."""
    if kind == "bucket" and isinstance(node, EventTriggerNode):
        bucket = node.buckets.get(key)
        if bucket is None:
            return None
        # A proactive firing reports the bucket's last event; a reactive one the current one.
        last = _event_data(bucket.last_event) if node.proactive else None
        data = {"start": bucket.start, "end": bucket.end, "count": bucket.count, "last": last}
        return _encode(data).decode()
    if kind == "fired" and isinstance(node, EventTriggerNode):
        at = node.unresolved.get(key)
        return None if at is None else _encode({"at": at}).decode()
    if kind == "child" and isinstance(node, CompositeNode):
        firing = node.firings.get(key)
        if firing is None:
            return None
        data = {"at": firing.at, "labels": firing.labels, "event": _event_data(firing.event)}
        return _encode(data).decode()
    return None


def restore_entry(
    node: TriggerNode, kind: str, key_text: str, data_text: str
) -> tuple[float, EventTriggerNode, tuple[str, ...]] | None:
    """Put one row back into memory; returns a deadline to schedule for a bucket.

    Rows that do not fit the node (the automation changed shape) are ignored.
    """
    data = _decode(data_text)
    if kind == "child" and isinstance(node, CompositeNode):
        child = next((c for c in node.children if c.path == key_text), None)
        if child is not None:
            node.firings[key_text] = Firing(
                child, "triggered", data["at"], data.get("labels") or {}, _event(data["event"])
            )
        return None
    if not isinstance(node, EventTriggerNode):
        return None
    key = tuple(_decode(key_text))
    if len(key) != len(node.for_each):
        return None
    if kind == "fired":
        node.unresolved[key] = data["at"]
        return None
    if kind == "bucket":
        node.buckets[key] = Bucket(data["start"], data["end"], data["count"], _event(data["last"]))
        end = data["end"] if node.proactive else data["end"] + EXPIRED_BUCKET_BUFFER
        return (end, node, key)
    return None
