from __future__ import annotations

import datetime
import random
import uuid

import pytest
from storage_helpers import T0, plain_event

from headwater.events.filters import (
    EventAnyResourceFilter,
    EventFilter,
    EventIDFilter,
    EventNameFilter,
    EventOccurredFilter,
    EventOrder,
    EventRelatedFilter,
    EventResourceFilter,
)
from headwater.events.schema import Event
from headwater.exceptions import InvalidPageTokenError
from headwater.storage.database import Database
from headwater.storage.event_queries import read_events
from headwater.storage.writer import PersistenceWriter

NAMES = ["order.placed", "order.shipped", "order.cancelled", "headwater.flow-run.Failed", "ping"]
RESOURCES = ["shop.order.1", "shop.order.2", "shop.order.10", "headwater.flow-run.x"]
RELATED = [
    {
        "headwater.resource.id": "shop.customer.7",
        "headwater.resource.role": "customer",
        "tier": "gold",
    },
    {
        "headwater.resource.id": "shop.customer.8",
        "headwater.resource.role": "customer",
        "tier": "basic",
    },
    {"headwater.resource.id": "headwater.tag.prod", "headwater.resource.role": "tag"},
    {"headwater.resource.id": "shop.order.1", "headwater.resource.role": "parent"},
]


def random_events(count: int, seed: int = 1) -> list[Event]:
    rng = random.Random(seed)
    events = []
    for _ in range(count):
        # Few distinct timestamps: many ties, which the (occurred, id) order must break.
        occurred = T0 + datetime.timedelta(seconds=rng.randrange(40))
        related = rng.sample(RELATED, rng.randrange(3))
        events.append(
            plain_event(
                rng.choice(NAMES),
                rng.choice(RESOURCES),
                occurred,
                labels={"env": rng.choice(["prod", "dev"])},
                related=related,
            )
        )
    return events


FILTERS = [
    EventFilter(),
    EventFilter(order=EventOrder.ASC),
    EventFilter(event=EventNameFilter(prefix=["order."], exclude_name=["order.cancelled"])),
    EventFilter(event=EventNameFilter(name=["ping"]), order=EventOrder.ASC),
    EventFilter(event=EventNameFilter(exclude_prefix=["order.s"])),
    EventFilter(resource=EventResourceFilter(id=["shop.order.1"])),
    EventFilter(resource=EventResourceFilter(id_prefix=["shop.order.1"], labels={"env": "prod"})),
    EventFilter(related=EventRelatedFilter(id=["shop.customer.7"])),
    EventFilter(related=EventRelatedFilter(role=["customer"], labels={"tier": "!gold"})),
    EventFilter(
        related=[EventRelatedFilter(role=["tag"]), EventRelatedFilter(id=["shop.customer.8"])]
    ),
    EventFilter(related=EventRelatedFilter(resources_in_roles=[("shop.order.1", "parent")])),
    EventFilter(any_resource=EventAnyResourceFilter(id=["shop.order.1"]), order=EventOrder.ASC),
    EventFilter(any_resource=EventAnyResourceFilter(id_prefix=["shop.customer."])),
    EventFilter(
        occurred=EventOccurredFilter(
            since=T0 + datetime.timedelta(seconds=10), until=T0 + datetime.timedelta(seconds=20)
        ),
        related=EventRelatedFilter(id=["headwater.tag.prod"]),
    ),
]


@pytest.fixture
async def stored(db: Database) -> list[Event]:
    events = random_events(400)
    await PersistenceWriter(db).write_events(events)
    return events


def expected(events: list[Event], event_filter: EventFilter) -> list[uuid.UUID]:
    chosen = [event for event in events if event_filter.matches(event)]
    chosen.sort(
        key=lambda e: (e.occurred, str(e.id)), reverse=event_filter.order is EventOrder.DESC
    )
    return [event.id for event in chosen]


async def read_all(db: Database, event_filter: EventFilter, limit: int) -> list[uuid.UUID]:
    ids: list[uuid.UUID] = []
    token = None
    pages = 0
    while True:
        page = await read_events(db, event_filter, limit=limit, page_token=token)
        assert len(page.events) <= limit
        ids.extend(event.id for event in page.events)
        pages += 1
        assert pages < 500
        token = page.next_page_token
        if token is None:
            return ids


@pytest.mark.anyio
@pytest.mark.parametrize("index", range(len(FILTERS)))
async def test_pages_are_exactly_the_matching_events_in_order(
    db: Database, stored: list[Event], index: int
) -> None:
    event_filter = FILTERS[index]
    want = expected(stored, event_filter)
    assert want, "each filter should match something in this data"
    got = await read_all(db, event_filter, limit=7)
    assert len(got) == len(set(got)), "an event appeared on two pages"
    assert got == want


@pytest.mark.anyio
async def test_a_full_last_page_has_no_next_token(db: Database) -> None:
    events = random_events(10, seed=3)
    await PersistenceWriter(db).write_events(events)
    first = await read_events(db, limit=5)
    assert first.next_page_token is not None
    second = await read_events(db, limit=5, page_token=first.next_page_token)
    assert len(second.events) == 5 and second.next_page_token is None


@pytest.mark.anyio
async def test_stored_events_come_back_equal(db: Database, stored: list[Event]) -> None:
    wanted = stored[17]
    page = await read_events(db, EventFilter(id=EventIDFilter(id=[wanted.id])))
    assert page.events == [wanted]


@pytest.mark.anyio
async def test_bad_page_tokens_are_refused(db: Database, stored: list[Event]) -> None:
    with pytest.raises(InvalidPageTokenError, match="malformed page token"):
        await read_events(db, page_token="not-a-token!")
    token = (await read_events(db, limit=3)).next_page_token
    assert token is not None
    with pytest.raises(InvalidPageTokenError, match="DESC order"):
        await read_events(db, EventFilter(order=EventOrder.ASC), page_token=token)
    with pytest.raises(ValueError):
        await read_events(db, limit=0)
