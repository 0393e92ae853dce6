"""Events: the schema, the in-process bus, and emitting your own (``prefect.events``)."""

from headwater.events.bus import EventBus, GapNotice, Subscription, get_bus
from headwater.events.emit import emit_event
from headwater.events.schema import Event, RelatedResource, Resource

__all__ = [
    "Event",
    "EventBus",
    "GapNotice",
    "RelatedResource",
    "Resource",
    "Subscription",
    "emit_event",
    "get_bus",
]
