"""``emit_event``: publish your own event onto the bus, with Prefect's signature.

Events emitted inside a flow or task run are related to that run automatically (flow run,
task run, flow, tags): the engine registers a provider for that, because this package must
not import the engine. An event emitted by a plain script, outside any run, starts what a
run start starts (persistence or forwarding, the reactor) through the start hooks that
``import headwater`` registers, so it is stored and automations see it; at exit it is
flushed like a run's events.
"""

from __future__ import annotations

import datetime
import sys
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from headwater.events.aliases import headwater_labels, headwater_name
from headwater.events.bus import get_bus
from headwater.events.schema import (
    RESOURCE_ID,
    Event,
    RelatedResource,
    Resource,
    check_nesting,
    validate_event_shape,
)
from headwater.exceptions import EventTooLarge, InvalidEventError
from headwater.settings import get_settings

__all__ = ["emit_event", "register_emit_hook", "register_related_provider"]

FOLLOWS_WINDOW = datetime.timedelta(minutes=5)

RelatedProvider = Callable[[], list[dict[str, str]]]
_providers: list[RelatedProvider] = []
_emit_hooks: tuple[Callable[[str], None], ...] = ()
_encoder = msgspec.json.Encoder()


def register_related_provider(provider: RelatedProvider) -> None:
    """Add related resources to every emitted event (e.g. the current run's)."""
    _providers.append(provider)


def _service_thread() -> threading.Thread | None:
    # Looked up only if the service loop's module was ever loaded: no loop, no thread.
    service = sys.modules.get("headwater.events.service")
    return None if service is None else service.get_service_loop().thread


def register_emit_hook(hook: Callable[[str], None]) -> None:
    """Call ``hook(event_name)`` before each event emitted from outside the service loop is
    published.

    Hooks must be cheap once their work is done; an exception from one (the run history
    cannot be written, say) reaches the caller and nothing is published.
    """
    global _emit_hooks
    if hook not in _emit_hooks:
        _emit_hooks = (*_emit_hooks, hook)


def emit_event(
    event: str,
    resource: Mapping[str, str],
    occurred: datetime.datetime | None = None,
    related: list[Mapping[str, str]] | None = None,
    payload: Mapping[str, Any] | None = None,
    id: uuid.UUID | None = None,
    follows: Event | uuid.UUID | None = None,
    **kwargs: Any,
) -> Event | None:
    """Build, validate and publish one event.

    Args:
        event: the event name, e.g. ``"order.placed"``.
        resource: the primary resource's labels; must include ``headwater.resource.id``.
        occurred: when it happened (default now, UTC).
        related: related resources, each with ``headwater.resource.id`` and ``.role``.
        payload: free JSON.
        id: the event id (default: a new time-ordered UUID).
        follows: the event (or its id) this one follows; an Event more than five minutes
            away from ``occurred`` is ignored, as in Prefect.

    Returns:
        The published Event, or None when events are disabled (``HEADWATER_EVENTS_ENABLED``).

    Raises:
        InvalidEventError: a missing resource id, bad labels or a payload that is not JSON;
            nothing is published.
        EventTooLarge: the serialised event is over the size limit; nothing is published.
        StorageError: the event could not be kept (the database cannot be written and
            ``HEADWATER_PERSISTENCE_REQUIRED`` is true); nothing is published.
    """
    if kwargs:
        raise InvalidEventError(f"emit_event() got unexpected arguments: {sorted(kwargs)}")
    settings = get_settings()
    if not settings.events_enabled:
        return None
    if not isinstance(resource, Mapping):
        raise InvalidEventError(
            f"resource must be a mapping of labels, got {type(resource).__name__}"
        )
    resource = headwater_labels(resource)  # Prefect's label names are ours
    event = headwater_name(event) if isinstance(event, str) else event
    if not resource.get(RESOURCE_ID):
        raise InvalidEventError(
            f"resource is missing a non-empty {RESOURCE_ID!r} label (got labels {sorted(resource)})"
        )
    all_related = [
        RelatedResource(headwater_labels(item) if isinstance(item, Mapping) else item)
        for item in related or ()
    ]
    if _providers:
        present = {item.get(RESOURCE_ID) for item in all_related}
        for provider in _providers:
            for item in provider():
                if item[RESOURCE_ID] not in present:
                    present.add(item[RESOURCE_ID])
                    all_related.append(RelatedResource(item))
    fields: dict[str, Any] = {
        "event": event,
        "resource": Resource(resource),
        "related": all_related,
        "payload": dict(payload or {}),
    }
    if occurred is not None:
        if occurred.tzinfo is None:
            occurred = occurred.replace(tzinfo=datetime.timezone.utc)
        fields["occurred"] = occurred
    if id is not None:
        fields["id"] = id
    built = Event(**fields)
    validate_event_shape(built)
    if isinstance(follows, Event):
        if abs(follows.occurred - built.occurred) <= FOLLOWS_WINDOW:
            built.follows = follows.id
    elif follows is not None:
        built.follows = follows
    try:
        check_nesting(built.payload)
        size = len(_encoder.encode(built))
    except (TypeError, msgspec.EncodeError) as exc:
        raise InvalidEventError(
            f"payload of event {event!r} is not JSON-serialisable: {exc}"
        ) from None
    except RecursionError:
        raise InvalidEventError(f"payload of event {event!r} nests too deeply") from None
    if size > settings.events_maximum_size_bytes:
        raise EventTooLarge(size, settings.events_maximum_size_bytes)
    # Services emit from the service loop, where they are already running (and where
    # starting one would deadlock).
    if _emit_hooks and threading.current_thread() is not _service_thread():
        for hook in _emit_hooks:
            hook(event)
    get_bus().publish(built)
    return built
