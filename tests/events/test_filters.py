from __future__ import annotations

import datetime
import uuid

import msgspec
import pytest

from headwater.events.filters import (
    EventAnyResourceFilter,
    EventFilter,
    EventIDFilter,
    EventNameFilter,
    EventOccurredFilter,
    EventOrder,
    EventRelatedFilter,
    EventResourceFilter,
    label_matches,
    labels_match,
)
from headwater.events.schema import Event

T0 = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)


def make(
    name: str = "headwater.flow-run.Completed",
    resource_id: str = "headwater.flow-run.abc",
    occurred: datetime.datetime = T0,
    labels: dict[str, str] | None = None,
    related: list[dict[str, str]] | None = None,
) -> Event:
    return Event(
        occurred=occurred,
        event=name,
        resource={"headwater.resource.id": resource_id, **(labels or {})},  # type: ignore[arg-type]
        related=related or [],  # type: ignore[arg-type]
    )


FLOW = {"headwater.resource.id": "headwater.flow.etl", "headwater.resource.role": "flow"}
TAG = {"headwater.resource.id": "headwater.tag.prod", "headwater.resource.role": "tag"}


@pytest.mark.parametrize(
    ("expected", "value", "result"),
    [
        ("a", "a", True),
        ("a", "b", False),
        ("!a", "b", True),
        ("!a", "a", False),
        ("ab*", "abc", True),
        ("ab*", "ba", False),
        ("!ab*", "abc", False),
        ("!ab*", "xy", True),
        ("a", None, False),
        ("!a", None, False),  # a missing label never matches, as in Prefect
    ],
)
def test_label_value_rules(expected: str, value: str | None, result: bool) -> None:
    assert label_matches(expected, value) is result


def test_label_specs_and_labels_or_values() -> None:
    labels = {"env": "prod", "team": "data"}
    assert labels_match({}, labels)
    assert labels_match({"env": ["dev", "prod"], "team": "da*"}, labels)
    assert not labels_match({"env": ["dev", "test"]}, labels)
    assert not labels_match({"env": "prod", "team": "!data"}, labels)


def test_empty_filter_matches_everything() -> None:
    assert EventFilter().matches(make())


def test_occurred_bounds_are_inclusive() -> None:
    window = EventFilter(occurred=EventOccurredFilter(since=T0, until=T0))
    assert window.matches(make(occurred=T0))
    assert not window.matches(make(occurred=T0 + datetime.timedelta(microseconds=1)))
    assert not window.matches(make(occurred=T0 - datetime.timedelta(microseconds=1)))
    naive = EventFilter(occurred=EventOccurredFilter(since=T0.replace(tzinfo=None)))
    assert naive.matches(make(occurred=T0))


def test_event_name_clauses() -> None:
    names = EventNameFilter(
        prefix=["headwater.flow-run."],
        exclude_prefix=["headwater.flow-run.Pe"],
        exclude_name=["headwater.flow-run.Failed"],
    )
    flt = EventFilter(event=names)
    assert flt.matches(make("headwater.flow-run.Completed"))
    assert not flt.matches(make("headwater.flow-run.Pending"))
    assert not flt.matches(make("headwater.flow-run.Failed"))
    assert not flt.matches(make("headwater.task-run.Completed"))
    exact = EventFilter(event=EventNameFilter(name=["a.b", "c.d"]))
    assert exact.matches(make("c.d")) and not exact.matches(make("a.bc"))


def test_resource_clauses() -> None:
    event = make(resource_id="headwater.flow-run.abc", labels={"headwater.state-type": "FAILED"})
    assert EventFilter(resource=EventResourceFilter(id=["headwater.flow-run.abc"])).matches(event)
    assert EventFilter(resource=EventResourceFilter(id_prefix=["headwater.flow-run."])).matches(
        event
    )
    assert not EventFilter(resource=EventResourceFilter(id_prefix=["headwater.task-run."])).matches(
        event
    )
    assert EventFilter(
        resource=EventResourceFilter(labels={"headwater.state-type": "FAIL*"})
    ).matches(event)
    assert not EventFilter(
        resource=EventResourceFilter(id=["headwater.flow-run.abc"], labels={"x": "y"})
    ).matches(event)


def test_related_clause_needs_one_resource_meeting_all_its_criteria() -> None:
    event = make(related=[FLOW, TAG])
    assert EventFilter(
        related=EventRelatedFilter(role=["flow"], id=["headwater.flow.etl"])
    ).matches(event)
    # id of one related resource, role of another: not the same resource.
    assert not EventFilter(
        related=EventRelatedFilter(role=["tag"], id=["headwater.flow.etl"])
    ).matches(event)
    # A list of clauses: each met by some related resource.
    both = [EventRelatedFilter(role=["tag"]), EventRelatedFilter(id=["headwater.flow.etl"])]
    assert EventFilter(related=both).matches(event)
    assert EventFilter(
        related=EventRelatedFilter(resources_in_roles=[("headwater.tag.prod", "tag")])
    ).matches(event)
    assert not EventFilter(
        related=EventRelatedFilter(resources_in_roles=[("headwater.tag.prod", "flow")])
    ).matches(event)
    assert EventFilter(
        related=EventRelatedFilter(labels={"headwater.resource.role": "fl*"})
    ).matches(event)
    assert not EventFilter(related=EventRelatedFilter(role=["flow"])).matches(make())
    # The primary resource is not a related one.
    assert not EventFilter(related=EventRelatedFilter(id=["headwater.flow-run.abc"])).matches(event)


def test_any_resource_looks_at_primary_and_related() -> None:
    event = make(related=[FLOW])
    for resource_id in ("headwater.flow-run.abc", "headwater.flow.etl"):
        assert EventFilter(any_resource=EventAnyResourceFilter(id=[resource_id])).matches(event)
    assert EventFilter(any_resource=EventAnyResourceFilter(id_prefix=["headwater.flow."])).matches(
        event
    )
    assert not EventFilter(any_resource=EventAnyResourceFilter(id=["nope"])).matches(event)
    both = [
        EventAnyResourceFilter(id=["headwater.flow.etl"]),
        EventAnyResourceFilter(id=["headwater.flow-run.abc"]),
    ]
    assert EventFilter(any_resource=both).matches(event)
    both.append(EventAnyResourceFilter(id=["missing"]))
    assert not EventFilter(any_resource=both).matches(event)


def test_id_clause() -> None:
    event = make()
    assert EventFilter(id=EventIDFilter(id=[event.id])).matches(event)
    assert not EventFilter(id=EventIDFilter(id=[uuid.uuid4()])).matches(event)


def test_filters_round_trip_through_json_in_prefect_shape() -> None:
    raw = {
        "occurred": {"since": "2024-05-01T00:00:00Z", "until": None},
        "event": {"prefix": ["headwater.flow-run."]},
        "resource": {"labels": {"headwater.state-type": ["FAILED", "CRASHED"]}},
        "related": {"role": ["tag"], "id": ["headwater.tag.prod"]},
        "any_resource": [{"id_prefix": ["headwater.flow"]}],
        "order": "ASC",
    }
    flt = msgspec.convert(raw, EventFilter)
    assert flt.order is EventOrder.ASC
    assert isinstance(flt.related, EventRelatedFilter)
    assert msgspec.json.decode(msgspec.json.encode(flt), type=EventFilter) == flt
    assert EventFilter().order is EventOrder.DESC
