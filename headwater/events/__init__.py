"""Events: the schema, the in-process bus, and emitting your own (``prefect.events``).

Triggers and actions (``EventTrigger``, ``DeploymentEventTrigger``, ``RunDeployment``...)
are importable from here too, as in Prefect; they are loaded on first use
(:mod:`headwater.prefect_names`).
"""

from headwater.events.bus import EventBus, GapNotice, Subscription, get_bus
from headwater.events.emit import emit_event
from headwater.events.schema import Event, RelatedResource, Resource
from headwater.prefect_names import events_name as __getattr__  # noqa: F401

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
