"""/api/events over HTTP: posting (all or nothing), filtering, paging with next_page tokens."""

from __future__ import annotations

import base64

import httpx
import msgspec
import pytest
from server_helpers import RunningServer, make_event, unique, wait_until

from headwater.events import get_bus


def post(server: RunningServer, events: object) -> httpx.Response:
    return httpx.post(f"{server.url}/api/events", content=msgspec.json.encode(events))


def by_resource(resource_id: str, order: str = "ASC") -> dict[str, object]:
    return {"resource": {"id": [resource_id]}, "order": order}


def test_posted_events_are_stored(server: RunningServer) -> None:
    resource_id = unique("posted")
    response = post(server, [make_event(resource_id, n=n) for n in range(3)])
    assert response.status_code == 204
    assert get_bus().flush(timeout=20)
    body = httpx.post(
        f"{server.url}/api/events/filter", json={"filter": by_resource(resource_id)}
    ).json()
    assert [event["payload"]["n"] for event in body["events"]] == [0, 1, 2]
    assert body["next_page"] is None
    assert all("received" in event for event in body["events"])


def test_one_invalid_event_rejects_the_request_and_stores_nothing(server: RunningServer) -> None:
    resource_id = unique("rejected")
    events = [msgspec.to_builtins(make_event(resource_id)) for _ in range(3)]
    events[2]["related"] = [{"headwater.resource.id": "x"}]
    response = post(server, events)
    assert response.status_code == 422
    assert response.json() == {
        "detail": "events[2]: invalid event: related[0] is missing a non-empty "
        "'headwater.resource.role'; no event was stored"
    }
    assert get_bus().flush(timeout=20)
    body = httpx.post(
        f"{server.url}/api/events/filter", json={"filter": by_resource(resource_id)}
    ).json()
    assert body["events"] == []


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b'{"event": "x"}', "request body must be a JSON array of events: Expected `array`"),
        (b"[", "request body is not valid JSON"),
        (b'[{"event": 1}]', "events[0]: invalid event: Expected `str`, got `int` - at `$.event`"),
    ],
)
def test_bad_event_bodies_are_422(server: RunningServer, content: bytes, detail: str) -> None:
    response = httpx.post(f"{server.url}/api/events", content=content)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(detail)


def test_paging_through_a_filter(server: RunningServer) -> None:
    resource_id = unique("paged")
    assert post(server, [make_event(resource_id, n=n) for n in range(7)]).status_code == 204
    assert get_bus().flush(timeout=20)
    body = httpx.post(
        f"{server.url}/api/events/filter",
        json={"filter": by_resource(resource_id), "limit": 3},
    ).json()
    seen = [event["payload"]["n"] for event in body["events"]]
    pages = 1
    while body["next_page"] is not None:
        assert body["next_page"].startswith(f"{server.url}/api/events/filter/next?page-token=")
        response = httpx.get(body["next_page"])
        assert response.status_code == 200
        body = response.json()
        seen += [event["payload"]["n"] for event in body["events"]]
        pages += 1
    assert seen == list(range(7))
    assert pages == 3


def test_newest_first_by_default(server: RunningServer) -> None:
    resource_id = unique("desc")
    assert post(server, [make_event(resource_id, n=n) for n in range(3)]).status_code == 204
    wait_until(lambda: len(_events(server, resource_id)) == 3)
    assert [event["payload"]["n"] for event in _events(server, resource_id)] == [2, 1, 0]


def _events(server: RunningServer, resource_id: str) -> list[dict[str, object]]:
    filter_ = {"resource": {"id": [resource_id]}}
    events: list[dict[str, object]] = httpx.post(
        f"{server.url}/api/events/filter", json={"filter": filter_}
    ).json()["events"]
    return events


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "",
        base64.urlsafe_b64encode(b'[{"occurred": {}}, 10, "bm90LWEtcG9zaXRpb24"]').decode(),
        base64.urlsafe_b64encode(b"[{}, 500, 1]").decode(),
    ],
)
def test_bad_page_token_is_403(server: RunningServer, token: str) -> None:
    response = httpx.get(f"{server.url}/api/events/filter/next", params={"page-token": token})
    assert response.status_code == 403
    assert response.json() == {"detail": "Invalid page token"}


def test_limit_above_50_is_422(server: RunningServer) -> None:
    response = httpx.post(f"{server.url}/api/events/filter", json={"limit": 51})
    assert response.status_code == 422
    assert response.json() == {
        "detail": "invalid request body: Expected `int` <= 50 - at `$.limit`"
    }


def test_bad_filter_clause_is_422(server: RunningServer) -> None:
    response = httpx.post(
        f"{server.url}/api/events/filter", json={"filter": {"event": {"prefix": "x"}}}
    )
    assert response.status_code == 422
    assert response.json() == {
        "detail": "invalid request body: Expected `array | null`, got `str` - at "
        "`$.filter.event.prefix`"
    }
