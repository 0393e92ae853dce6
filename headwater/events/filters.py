"""EventFilter: which events a query, a live feed or a stream subscriber wants.

The fields are Prefect 3's (``prefect.events.filters``): every clause that is set is
AND-ed, lists within a clause are OR-ed. :meth:`EventFilter.matches` is the pure,
in-memory decision used by live feeds; the storage layer turns the same filter into SQL
that narrows the candidates and then calls :meth:`EventFilter.matches` on them, so both
paths agree by construction.

Differences from Prefect, on purpose:

- ``occurred.since`` and ``occurred.until`` default to None (unbounded). Prefect's
  defaults (start of today minus 180 days, and "now") are taken when the filter is built,
  so a long-lived live filter would reject every event that happens after it was made.
- A ``related`` (or ``any_resource``) clause is satisfied by one resource that meets all of
  its criteria at once (as Prefect's database query does), not by different related
  resources meeting different criteria. To require several related resources, pass a list
  of clauses: each must be met by some related resource.
- ``resource.distinct`` and the ``text`` clause are not supported yet: a filter may carry
  them only at their defaults (as Prefect's clients send them), never set.
- A field this filter does not know is an error, not silently ignored (a misspelt field
  would otherwise match everything).

Label values follow Prefect's client-side rules: ``"!x"`` negates, a trailing ``*`` makes a
prefix match, values in a list are OR-ed, labels are AND-ed, a missing label never matches.
"""

from __future__ import annotations

import datetime
import enum
import uuid
from collections.abc import Iterable, Mapping
from typing import Literal

import msgspec

from headwater.events.schema import RESOURCE_ID, RESOURCE_ROLE, Event

__all__ = [
    "LabelSpec",
    "EventOrder",
    "EventOccurredFilter",
    "EventNameFilter",
    "EventResourceFilter",
    "EventRelatedFilter",
    "EventAnyResourceFilter",
    "EventIDFilter",
    "EventFilter",
    "label_matches",
    "labels_match",
    "MAX_FILTER_VALUES",
    "check_filter_cost",
]

MAX_FILTER_VALUES = 1000
"""The most values (names, ids, prefixes, labels) one filter may hold: matching costs grow
with them on every event, for every observer that holds such a filter."""

LabelSpec = dict[str, str | list[str]]
"""Label name → expected value (or values, OR-ed); see :func:`labels_match`."""


class EventOrder(str, enum.Enum):
    """The order events come back in, by (occurred, id)."""

    ASC = "ASC"
    DESC = "DESC"


def label_matches(expected: str, value: str | None) -> bool:
    """Whether one label value meets one expected value (``"!x"`` negates, ``"x*"`` is a prefix).

    A missing label (None) never matches, not even a negated expectation, as in Prefect.
    """
    if value is None:
        return False
    positive = True
    if expected.startswith("!"):
        expected = expected[1:]
        positive = False
    found = value.startswith(expected[:-1]) if expected.endswith("*") else value == expected
    return found if positive else not found


def labels_match(spec: Mapping[str, str | list[str]], labels: Mapping[str, str]) -> bool:
    """Whether a resource's labels meet every label of ``spec``; an empty spec matches all."""
    for label, expected in spec.items():
        value = labels.get(label)
        if isinstance(expected, str):
            if not label_matches(expected, value):
                return False
        elif not any(label_matches(one, value) for one in expected):
            return False
    return True


def _has_prefix(value: str, prefixes: Iterable[str]) -> bool:
    return any(value.startswith(prefix) for prefix in prefixes)


class EventOccurredFilter(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Events that occurred within ``[since, until]`` (both inclusive; None is unbounded)."""

    since: datetime.datetime | None = None
    until: datetime.datetime | None = None

    def matches(self, event: Event) -> bool:
        occurred = event.occurred
        if self.since is not None and occurred < _aware(self.since):
            return False
        return self.until is None or occurred <= _aware(self.until)


class EventNameFilter(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Events by name: any of ``prefix``/``name``, none of ``exclude_prefix``/``exclude_name``."""

    prefix: list[str] | None = None
    exclude_prefix: list[str] | None = None
    name: list[str] | None = None
    exclude_name: list[str] | None = None

    def matches(self, event: Event) -> bool:
        name = event.event
        if self.prefix is not None and not _has_prefix(name, self.prefix):
            return False
        if self.exclude_prefix is not None and _has_prefix(name, self.exclude_prefix):
            return False
        if self.name is not None and name not in self.name:
            return False
        return self.exclude_name is None or name not in self.exclude_name


class EventResourceFilter(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Events by their primary resource: id in ``id``, id starting with ``id_prefix``, labels."""

    id: list[str] | None = None
    id_prefix: list[str] | None = None
    labels: LabelSpec | None = None
    distinct: Literal[False] = False  # Prefect's; not supported: only its default is accepted

    def matches(self, event: Event) -> bool:
        return _resource_matches(self.id, self.id_prefix, self.labels, event.resource)


class EventRelatedFilter(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Events with one related resource meeting every criterion given.

    Attributes:
        id: the related resource's id is one of these.
        role: its role is one of these.
        resources_in_roles: its (id, role) pair is one of these.
        labels: its labels meet this spec.
    """

    id: list[str] | None = None
    role: list[str] | None = None
    resources_in_roles: list[tuple[str, str]] | None = None
    labels: LabelSpec | None = None

    def matches(self, event: Event) -> bool:
        return any(self.matches_resource(related) for related in event.related)

    def matches_resource(self, related: Mapping[str, str]) -> bool:
        """Whether one related resource meets every criterion of this clause."""
        resource_id = related.get(RESOURCE_ID)
        role = related.get(RESOURCE_ROLE)
        if self.id is not None and resource_id not in self.id:
            return False
        if self.role is not None and role not in self.role:
            return False
        if self.resources_in_roles is not None and not any(
            resource_id == wanted_id and role == wanted_role
            for wanted_id, wanted_role in self.resources_in_roles
        ):
            return False
        return self.labels is None or labels_match(self.labels, related)


class EventAnyResourceFilter(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Events whose primary resource, or any related one, meets every criterion given."""

    id: list[str] | None = None
    id_prefix: list[str] | None = None
    labels: LabelSpec | None = None

    def matches(self, event: Event) -> bool:
        if _resource_matches(self.id, self.id_prefix, self.labels, event.resource):
            return True
        return any(
            _resource_matches(self.id, self.id_prefix, self.labels, related)
            for related in event.related
        )


class EventIDFilter(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Events whose id is one of ``id``."""

    id: list[uuid.UUID] | None = None

    def matches(self, event: Event) -> bool:
        return self.id is None or event.id in self.id


def _resource_matches(
    ids: list[str] | None,
    id_prefixes: list[str] | None,
    labels: LabelSpec | None,
    resource: Mapping[str, str],
) -> bool:
    resource_id = resource.get(RESOURCE_ID, "")
    if ids is not None and resource_id not in ids:
        return False
    if id_prefixes is not None and not _has_prefix(resource_id, id_prefixes):
        return False
    return labels is None or labels_match(labels, resource)


def _aware(moment: datetime.datetime) -> datetime.datetime:
    # A naive bound is read as UTC, the way Event normalises a naive ``occurred``.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.timezone.utc)
    return moment


def _as_list(
    clause: EventRelatedFilter | list[EventRelatedFilter] | None,
) -> list[EventRelatedFilter]:
    if clause is None:
        return []
    return clause if isinstance(clause, list) else [clause]


class EventFilter(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which events to return; every clause that is set must hold.

    Attributes:
        occurred: time window (inclusive, unbounded by default).
        event: name clauses.
        any_resource: a clause (or list of clauses, all required) on the primary or any
            related resource.
        resource: a clause on the primary resource.
        related: a clause (or list of clauses, all required) each met by one related resource.
        id: event ids.
        order: ASC or DESC by (occurred, id); DESC by default, as in Prefect.
    """

    occurred: EventOccurredFilter = msgspec.field(default_factory=EventOccurredFilter)
    event: EventNameFilter | None = None
    any_resource: EventAnyResourceFilter | list[EventAnyResourceFilter] | None = None
    resource: EventResourceFilter | None = None
    related: EventRelatedFilter | list[EventRelatedFilter] | None = None
    id: EventIDFilter | None = None
    order: EventOrder = EventOrder.DESC
    text: None = None  # Prefect's full-text clause; not supported: only null is accepted

    def related_clauses(self) -> list[EventRelatedFilter]:
        """The ``related`` clauses as a list (empty when unset)."""
        return _as_list(self.related)

    def any_resource_clauses(self) -> list[EventAnyResourceFilter]:
        """The ``any_resource`` clauses as a list (empty when unset)."""
        if self.any_resource is None:
            return []
        if isinstance(self.any_resource, list):
            return self.any_resource
        return [self.any_resource]

    def matches(self, event: Event) -> bool:
        """Whether ``event`` passes every clause of this filter (pure, no I/O)."""
        if not self.occurred.matches(event):
            return False
        if self.event is not None and not self.event.matches(event):
            return False
        if self.resource is not None and not self.resource.matches(event):
            return False
        if self.id is not None and not self.id.matches(event):
            return False
        if not all(clause.matches(event) for clause in self.related_clauses()):
            return False
        return all(clause.matches(event) for clause in self.any_resource_clauses())


def _values(value: object) -> int:
    if isinstance(value, msgspec.Struct):
        return sum(_values(getattr(value, name)) for name in value.__struct_fields__)
    if isinstance(value, dict):
        return sum(1 + _values(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return sum(max(1, _values(item)) for item in value)
    return 0


def check_filter_cost(event_filter: EventFilter) -> None:
    """Refuse a filter too costly to evaluate on every event.

    Raises:
        ValueError: it holds more than :data:`MAX_FILTER_VALUES` values; the message says how many.
    """
    count = _values(event_filter)
    if count > MAX_FILTER_VALUES:
        raise ValueError(
            f"the filter holds {count} values; at most {MAX_FILTER_VALUES} are accepted"
        )
