"""emit_event: validation, publication, run context, size limits, follows."""

from __future__ import annotations

import datetime
import uuid

import msgspec
import pytest

from headwater import emit_event, flow, tags, task
from headwater.events import Event
from headwater.exceptions import EventTooLarge, InvalidEventError
from headwater.settings import temporary_settings

RID = "headwater.resource.id"


def test_emit_event_publishes_and_returns_the_event(events):
    emitted = emit_event("order.placed", {RID: "order.42"}, payload={"amount": 3})
    assert isinstance(emitted, Event)
    assert emitted.resource.id == "order.42"
    assert emitted.payload == {"amount": 3}
    from headwater.events import get_bus

    assert get_bus().flush(timeout=5)
    assert [e.id for e in events if e.event == "order.placed"] == [emitted.id]


def test_emit_event_without_resource_id_publishes_nothing(events):
    with pytest.raises(InvalidEventError, match="headwater.resource.id"):
        emit_event("order.placed", {"name": "x"})
    assert events.names("order.") == []


def test_emit_event_with_non_json_payload_names_the_event(events):
    with pytest.raises(InvalidEventError, match="'order.placed' is not JSON-serialisable"):
        emit_event("order.placed", {RID: "order.1"}, payload={"when": object()})
    assert events.names("order.") == []


def test_related_resources_need_a_role():
    with pytest.raises(InvalidEventError, match=r"related\[0\].*role"):
        emit_event("order.placed", {RID: "order.1"}, related=[{RID: "customer.1"}])


def test_unknown_keyword_is_an_error():
    with pytest.raises(InvalidEventError, match="unexpected arguments"):
        emit_event("order.placed", {RID: "order.1"}, colour="red")


def test_event_too_large_is_refused():
    with temporary_settings(events_maximum_size_bytes=1000), pytest.raises(EventTooLarge) as caught:
        emit_event("blob", {RID: "blob.1"}, payload={"data": "x" * 5000})
    assert caught.value.size > 1000
    assert "maximum is 1000 bytes" in str(caught.value)


def test_disabled_events_return_none():
    with temporary_settings(events_enabled=False):
        assert emit_event("order.placed", {RID: "order.1"}) is None


def test_events_emitted_in_a_run_are_related_to_it():
    @task
    def ship() -> Event | None:
        return emit_event("order.shipped", {RID: "order.7"})

    @flow
    def orders() -> Event | None:
        with tags("prod"):
            return ship()

    emitted = orders()
    assert emitted is not None
    roles = {related.role: related.id for related in emitted.related}
    assert roles["task-run"].startswith("headwater.task-run.")
    assert roles["flow-run"].startswith("headwater.flow-run.")
    assert roles["flow"] == "headwater.flow.orders"
    assert roles["tag"] == "headwater.tag.prod"


def test_explicit_related_resources_are_kept_first():
    @flow
    def orders() -> Event | None:
        return emit_event(
            "order.placed",
            {RID: "order.1"},
            related=[{RID: "customer.9", "headwater.resource.role": "customer"}],
        )

    emitted = orders()
    assert emitted is not None
    assert emitted.related[0].id == "customer.9"


def test_follows_an_event_within_five_minutes_only():
    first = emit_event("step.one", {RID: "job.1"})
    assert first is not None
    second = emit_event("step.two", {RID: "job.1"}, follows=first)
    assert second is not None and second.follows == first.id
    late = emit_event(
        "step.three",
        {RID: "job.1"},
        occurred=first.occurred + datetime.timedelta(minutes=6),
        follows=first,
    )
    assert late is not None and late.follows is None


def test_given_id_and_naive_occurred_are_used():
    event_id = uuid.uuid4()
    naive = datetime.datetime(2026, 1, 2, 3, 4, 5)
    emitted = emit_event("x.y", {RID: "thing.1"}, id=event_id, occurred=naive)
    assert emitted is not None
    assert emitted.id == event_id
    assert emitted.occurred.tzinfo is datetime.timezone.utc
    decoded = msgspec.json.decode(msgspec.json.encode(emitted))
    assert decoded["id"] == str(event_id)
