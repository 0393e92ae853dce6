"""The event schema: what every event on the bus, in the database and on the wire looks like.

Field names and resource conventions follow Prefect's, with the ``headwater.`` prefix in
place of ``prefect.``: an event names what happened (``headwater.flow-run.Completed``),
the resource it happened to (labels including ``headwater.resource.id``), the related
resources with their roles, and a free JSON payload.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any, Protocol

import msgspec

from headwater.exceptions import InvalidEventError
from headwater.ids import new_uuid

__all__ = [
    "RESOURCE_ID",
    "RESOURCE_NAME",
    "RESOURCE_ROLE",
    "Event",
    "EventSource",
    "RelatedResource",
    "Resource",
    "decode_event",
    "event_from_dict",
    "events_decoder_hook",
]

RESOURCE_ID = "headwater.resource.id"
RESOURCE_NAME = "headwater.resource.name"
RESOURCE_ROLE = "headwater.resource.role"

MAXIMUM_LABELS_PER_RESOURCE = 500
MAXIMUM_RELATED_RESOURCES = 100


class Resource(dict):  # type: ignore[type-arg]
    """A resource: a flat mapping of string labels that includes ``headwater.resource.id``."""

    @property
    def id(self) -> str:
        return self[RESOURCE_ID]  # type: ignore[no-any-return]

    @property
    def name(self) -> str | None:
        return self.get(RESOURCE_NAME)


class RelatedResource(Resource):
    """A resource related to an event's primary resource, in role ``headwater.resource.role``."""

    @property
    def role(self) -> str:
        return self[RESOURCE_ROLE]  # type: ignore[no-any-return]


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class Event(msgspec.Struct, kw_only=True, omit_defaults=False):
    """Something that happened to a resource.

    Attributes:
        occurred: when it happened (UTC).
        event: the dotted event name, e.g. ``headwater.flow-run.Completed``.
        resource: the primary resource's labels; ``resource.id`` is required.
        related: other resources involved, each with a ``headwater.resource.role``.
        payload: free JSON.
        id: unique id; for a state change it is the new state's id.
        follows: the id of an event this one causally follows (the previous state's id).
    """

    occurred: datetime.datetime = msgspec.field(default_factory=_utcnow)
    event: str
    resource: Resource
    related: list[RelatedResource] = msgspec.field(default_factory=list)
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    id: uuid.UUID = msgspec.field(default_factory=new_uuid)
    follows: uuid.UUID | None = None

    def __post_init__(self) -> None:
        validate_event_shape(self, check_labels=False)

    @property
    def resource_id(self) -> str:
        return self.resource[RESOURCE_ID]  # type: ignore[no-any-return]

    def to_event(self) -> Event:
        """An Event is its own materialised form (see :class:`EventSource`)."""
        return self

    def resource_in_role(self, role: str) -> RelatedResource | None:
        """The first related resource in ``role``, or None."""
        for related in self.related:
            if related.get(RESOURCE_ROLE) == role:
                return related
        return None

    def resources_in_role(self, role: str) -> list[RelatedResource]:
        """Every related resource in ``role``, in order."""
        return [related for related in self.related if related.get(RESOURCE_ROLE) == role]

    def find_resource_label(self, label: str) -> str | None:
        """Look up ``label`` on the resource, or ``related:<role>:<label>`` on a related one."""
        if label.startswith("related:"):
            related_role, _, related_label = label[len("related:") :].partition(":")
            found = self.resource_in_role(related_role)
            return None if found is None else found.get(related_label)
        return self.resource.get(label)


class EventSource(Protocol):
    """What the bus carries: an :class:`Event`, or a compact record that becomes one on demand.

    The engine publishes compact transition records on the per-task path and lets the
    consumers, off that path, materialise the full event. ``to_event`` must be
    deterministic (same ids, same timestamps) so that two consumers agree.
    """

    @property
    def resource_id(self) -> str: ...

    def to_event(self) -> Event: ...


def _check_labels(labels: dict[str, Any], where: str) -> None:
    if len(labels) > MAXIMUM_LABELS_PER_RESOURCE:
        raise InvalidEventError(
            f"{where} has {len(labels)} labels; at most {MAXIMUM_LABELS_PER_RESOURCE} are allowed"
        )
    for key, value in labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidEventError(
                f"{where} label {key!r} has a {type(value).__name__} value; "
                "labels are strings mapped to strings"
            )


def validate_event_shape(event: Event, check_labels: bool = True) -> None:
    """Check the rules the type hints cannot express; raise InvalidEventError naming the field.

    Every Event gets the cheap checks when it is built; the label-by-label checks
    (``check_labels``) run where events come from outside: ``emit_event``, decoding, the
    wire. The engine's own events skip them, on the per-event consumer path.
    """
    if not event.event:
        raise InvalidEventError(
            "event name is empty; expected a dotted name such as 'order.placed'"
        )
    if len(event.event) > 1024:
        raise InvalidEventError(f"event name is {len(event.event)} characters; at most 1024")
    resource = event.resource
    if not isinstance(resource, Resource):
        if not isinstance(resource, dict):
            raise InvalidEventError(
                f"resource must be a mapping of labels, got {type(resource).__name__}"
            )
        resource = event.resource = Resource(resource)
    if not resource.get(RESOURCE_ID):
        raise InvalidEventError(
            f"resource is missing a non-empty {RESOURCE_ID!r} label (got labels {sorted(resource)})"
        )
    if check_labels:
        _check_labels(resource, "resource")
    if len(event.related) > MAXIMUM_RELATED_RESOURCES:
        raise InvalidEventError(
            f"event has {len(event.related)} related resources; at most "
            f"{MAXIMUM_RELATED_RESOURCES} are allowed"
        )
    for index, related in enumerate(event.related):
        if not isinstance(related, RelatedResource):
            if not isinstance(related, dict):
                raise InvalidEventError(
                    f"related[{index}] must be a mapping of labels, got {type(related).__name__}"
                )
            related = event.related[index] = RelatedResource(related)
        if not related.get(RESOURCE_ID):
            raise InvalidEventError(f"related[{index}] is missing a non-empty {RESOURCE_ID!r}")
        if not related.get(RESOURCE_ROLE):
            raise InvalidEventError(f"related[{index}] is missing a non-empty {RESOURCE_ROLE!r}")
        if check_labels:
            _check_labels(related, f"related[{index}]")
    if event.occurred.tzinfo is None:
        event.occurred = event.occurred.replace(tzinfo=datetime.timezone.utc)


def events_decoder_hook(type_: type, obj: Any) -> Any:
    """msgspec ``dec_hook`` that builds :class:`Resource` and :class:`RelatedResource`."""
    if type_ is Resource or type_ is RelatedResource:
        if not isinstance(obj, dict):
            raise TypeError(f"expected an object of string labels, got {type(obj).__name__}")
        return type_(obj)
    raise NotImplementedError(f"cannot decode {type_!r}")


_decoder = msgspec.json.Decoder(Event, dec_hook=events_decoder_hook)

MAX_NESTING = 100
"""The deepest an event's JSON may nest (objects and arrays); deeper is refused at the door,
so no later stage (storage, triggers, the feed) recurses its way into a RecursionError."""

_TOO_DEEP = f"event is nested more than {MAX_NESTING} levels deep"


def nesting_depth(value: Any, limit: int = MAX_NESTING) -> int:
    """How deep ``value`` nests (dicts and lists), counted without recursion; stops past
    ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def check_nesting(value: Any) -> None:
    """Refuse ``value`` if it nests deeper than :data:`MAX_NESTING`.

    Raises:
        InvalidEventError: it does.
    """
    if nesting_depth(value) > MAX_NESTING:
        raise InvalidEventError(_TOO_DEEP)


def decode_event(data: bytes | str) -> Event:
    """Parse one event from JSON.

    Raises:
        InvalidEventError: the JSON is malformed, nests too deeply or breaks the schema; the
            message says where.
    """
    try:
        event = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise InvalidEventError(f"invalid event: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InvalidEventError(f"malformed event JSON: {exc}") from None
    except RecursionError:
        raise InvalidEventError(_TOO_DEEP) from None
    # An event's envelope nests 3 deep: only a payload with many brackets can be too deep.
    brackets = (
        data.count(b"[") + data.count(b"{")
        if isinstance(data, bytes)
        else data.count("[") + data.count("{")
    )
    if brackets > MAX_NESTING:
        check_nesting(event.payload)
    validate_event_shape(event)
    return event


def event_from_dict(data: dict[str, Any]) -> Event:
    """Build and validate an event from a plain mapping (e.g. a decoded JSON object)."""
    check_nesting(data)
    try:
        event = msgspec.convert(data, Event, dec_hook=events_decoder_hook)
    except msgspec.ValidationError as exc:
        raise InvalidEventError(f"invalid event: {exc}") from None
    validate_event_shape(event)
    return event
