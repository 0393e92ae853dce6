"""Inbound webhooks: definitions over HTTP, static and Jinja templates, the sandbox, auth."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from server_helpers import API_KEYS, AUTH_STRING, RunningServer, unique

from headwater.events import Event, get_bus
from headwater.events.bus import Subscription
from headwater.exceptions import WebhookError
from headwater.server.webhooks import new_webhook, render_event

GITHUB_TEMPLATE = """
{
  "event": "github.{{ headers['X-GitHub-Event'] }}",
  "resource": {
    "headwater.resource.id": "github.repo.{{ body.repository.full_name }}",
    "headwater.resource.name": {{ body.repository.name | tojson }}
  },
  "payload": {"action": {{ body.action | tojson }}, "method": "{{ method }}"}
}
"""


@pytest.fixture
def events() -> Iterator[Subscription]:
    """What the server publishes during the test (it shares this process's bus)."""
    subscription = get_bus().subscribe(buffer_size=10_000)
    try:
        yield subscription
    finally:
        subscription.close()


async def _published(subscription: Subscription) -> list[Event]:
    return [item for item in await subscription.get_batch(10_000, 0) if isinstance(item, Event)]


def published(subscription: Subscription) -> list[Event]:
    import anyio

    return anyio.run(_published, subscription)


def create(server: RunningServer, **body: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/api/webhooks", json=body)


def test_static_webhook(server: RunningServer, events: Subscription) -> None:
    slug = unique("static")
    response = create(
        server,
        slug=slug,
        name="Orders",
        event="order.placed",
        resource={"headwater.resource.id": "shop.orders", "team": "sales"},
    )
    assert response.status_code == 201
    assert response.json()["kind"] == "static"
    reply = httpx.post(f"{server.url}/hooks/{slug}", json={"order": 42})
    assert reply.status_code == 204
    (event,) = [event for event in published(events) if event.event == "order.placed"]
    assert event.resource == {"headwater.resource.id": "shop.orders", "team": "sales"}
    assert event.related == [
        {
            "headwater.resource.id": f"headwater.webhook.{slug}",
            "headwater.resource.name": "Orders",
            "headwater.resource.role": "webhook",
        }
    ]
    assert event.payload["method"] == "POST"
    assert event.payload["body"] == {"order": 42}
    assert event.payload["headers"]["content-type"] == "application/json"


def test_jinja_webhook_renders_the_request(server: RunningServer, events: Subscription) -> None:
    slug = unique("github")
    assert create(server, slug=slug, template=GITHUB_TEMPLATE).status_code == 201
    reply = httpx.post(
        f"{server.url}/hooks/{slug}",
        json={"action": "opened", "repository": {"full_name": "acme/app", "name": "app"}},
        headers={"X-GitHub-Event": "pull_request", "Authorization": "Bearer not-for-templates"},
    )
    assert reply.status_code == 204, reply.text
    (event,) = [event for event in published(events) if event.event.startswith("github.")]
    assert event.event == "github.pull_request"
    assert event.resource.id == "github.repo.acme/app"
    assert event.resource.name == "app"
    assert event.payload == {"action": "opened", "method": "POST"}
    assert event.resource_in_role("webhook") is not None


def test_templates_never_see_the_authorization_header() -> None:
    hook = new_webhook(
        "h",
        template='{"event": "x", "resource": {"headwater.resource.id": '
        "\"{{ headers.get('authorization', 'none') }}\"}}",
    )
    event = render_event(hook, "POST", {"x-a": "1"}, None)
    assert event.resource.id == "none"


def test_form_and_text_bodies(server: RunningServer, events: Subscription) -> None:
    slug = unique("form")
    template = (
        '{"event": "form.{{ body.kind if body is mapping else body }}", "resource": '
        '{"headwater.resource.id": "forms"}}'
    )
    assert create(server, slug=slug, template=template).status_code == 201
    assert httpx.post(f"{server.url}/hooks/{slug}", data={"kind": "signup"}).status_code == 204
    assert httpx.put(f"{server.url}/hooks/{slug}", content=b"plain").status_code == 204
    names = {event.event for event in published(events)}
    assert {"form.signup", "form.plain"} <= names


def test_sandbox_escape_fails_with_400_and_an_event(
    server: RunningServer, events: Subscription
) -> None:
    slug = unique("escape")
    template = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    assert create(server, slug=slug, template=template).status_code == 201
    reply = httpx.post(f"{server.url}/hooks/{slug}", json={"a": 1})
    assert reply.status_code == 400
    assert reply.json() == {
        "detail": "the template failed: SecurityError: access to attribute '__class__' of "
        "'str' object is unsafe."
    }
    (failed,) = [event for event in published(events) if event.event == "headwater.webhook.failed"]
    assert failed.resource.id == f"headwater.webhook.{slug}"
    assert failed.payload["error"] == reply.json()["detail"]
    assert failed.payload["request"]["method"] == "POST"


@pytest.mark.parametrize(
    ("template", "detail"),
    [
        ("not json", "the template's output is not JSON: Expecting value: line 1 column 1"),
        ("[1]", "the template's output must be a JSON object, got list"),
        ('{"resource": {}}', "the template's output has no 'event'"),
        ('{"event": "x", "resource": {}}', "the template's output needs resource["),
        ("{{ body.missing }}", "the template failed: UndefinedError: 'dict object' has no"),
        ("{{ range(10**9) | list }}", "the template failed: OverflowError: Range too big."),
    ],
)
def test_bad_template_output_is_400_with_what_went_wrong(
    server: RunningServer, events: Subscription, template: str, detail: str
) -> None:
    slug = unique("bad")
    assert create(server, slug=slug, template=template).status_code == 201
    reply = httpx.post(f"{server.url}/hooks/{slug}", json={"a": 1})
    assert reply.status_code == 400
    assert reply.json()["detail"].startswith(detail)
    failed = [event for event in published(events) if event.event == "headwater.webhook.failed"]
    assert len(failed) == 1


def test_invalid_json_body_for_json_content_type_is_400(server: RunningServer) -> None:
    slug = unique("json")
    assert create(server, slug=slug, template="{{ body | tojson }}").status_code == 201
    reply = httpx.post(
        f"{server.url}/hooks/{slug}", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert reply.status_code == 400
    assert reply.json()["detail"].startswith("the request body is not valid JSON")


def test_unknown_and_disabled_webhooks_are_404(server: RunningServer) -> None:
    slug = unique("off")
    resource = {"headwater.resource.id": "r"}
    assert create(server, slug=slug, event="e", resource=resource, enabled=False).status_code == 201
    assert httpx.post(f"{server.url}/hooks/{slug}").status_code == 404
    assert httpx.post(f"{server.url}/hooks/no-such-hook").json() == {
        "detail": "no webhook 'no-such-hook'"
    }


def test_definitions_crud(server: RunningServer) -> None:
    slug = unique("crud")
    resource = {"headwater.resource.id": "r"}
    assert create(server, slug=slug, event="e", resource=resource).status_code == 201
    again = create(server, slug=slug, event="e", resource=resource)
    assert again.status_code == 409
    assert again.json() == {"detail": f"a webhook with slug '{slug}' already exists"}
    assert slug in [hook["slug"] for hook in httpx.get(f"{server.url}/api/webhooks").json()]
    assert httpx.get(f"{server.url}/api/webhooks/{slug}").json()["event"] == "e"
    assert httpx.delete(f"{server.url}/api/webhooks/{slug}").status_code == 204
    assert httpx.delete(f"{server.url}/api/webhooks/{slug}").status_code == 404
    assert httpx.get(f"{server.url}/api/webhooks/{slug}").status_code == 404


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"slug": "bad slug!", "event": "e", "resource": {"headwater.resource.id": "r"}},
         "webhook slug 'bad slug!' is not valid"),
        ({"slug": "x1", "event": "e", "resource": {"team": "a"}},
         "a static webhook's resource needs a non-empty 'headwater.resource.id'"),
        ({"slug": "x2"}, "a static webhook needs an event name"),
        ({"slug": "x3", "template": "{{ oops", "event": "e"}, "give either a template"),
        ({"slug": "x4", "template": "{% if %}"}, "the template does not compile: "),
        ({"slug": 5}, "invalid request body: Expected `str`, got `int` - at `$.slug`"),
    ],
)  # fmt: skip
def test_invalid_definitions_are_422(
    server: RunningServer, body: dict[str, Any], detail: str
) -> None:
    response = httpx.post(f"{server.url}/api/webhooks", json=body)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(detail)


def test_new_webhook_reports_the_template_line() -> None:
    with pytest.raises(WebhookError, match=r"\(line 2\)"):
        new_webhook("t", template='{"event": "x",\n {% endfor %}')


def basic(value: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(value.encode()).decode()}


def test_under_server_auth_a_webhook_needs_credentials_its_secret_or_to_be_public(
    secured: RunningServer,
) -> None:
    resource = {"headwater.resource.id": "r"}
    default, public, private, secret = (
        unique("default"),
        unique("public"),
        unique("private"),
        unique("secret"),
    )
    bodies = [
        {"slug": default},
        {"slug": public, "public": True},
        {"slug": private, "require_auth": True},
        {"slug": secret, "secret": "s3cret-token-0123456789"},
    ]
    for body in bodies:
        response = httpx.post(
            f"{secured.url}/api/webhooks",
            json={"event": "e", "resource": resource, **body},
            headers=basic(AUTH_STRING),
        )
        assert response.status_code == 201, response.text
        assert "s3cret" not in response.text  # only its hash is kept, and never shown
    # the README's old default (public) was an open door under auth: now it is closed
    assert httpx.post(f"{secured.url}/hooks/{default}").status_code == 401
    assert httpx.post(f"{secured.url}/hooks/{public}").status_code == 204
    assert httpx.post(f"{secured.url}/hooks/{secret}").status_code == 401
    wrong = {"X-Headwater-Webhook-Secret": "not-the-secret-at-all"}
    assert httpx.post(f"{secured.url}/hooks/{secret}", headers=wrong).status_code == 401
    right = {"X-Headwater-Webhook-Secret": "s3cret-token-0123456789"}
    assert httpx.post(f"{secured.url}/hooks/{secret}", headers=right).status_code == 204
    query = f"{secured.url}/hooks/{secret}?secret=s3cret-token-0123456789"
    assert httpx.post(query).status_code == 204
    refused = httpx.post(f"{secured.url}/hooks/{private}")
    assert refused.status_code == 401
    assert refused.json() == {"exception_message": "Unauthorized"}
    assert (
        httpx.post(f"{secured.url}/hooks/{private}", headers=basic("admin:no")).status_code == 401
    )
    assert (
        httpx.post(f"{secured.url}/hooks/{private}", headers=basic(AUTH_STRING)).status_code == 204
    )
    key = API_KEYS.split(",")[0]
    bearer = {"Authorization": f"Bearer {key}"}
    assert httpx.post(f"{secured.url}/hooks/{private}", headers=bearer).status_code == 204


def test_require_auth_without_server_credentials_fails_closed(server: RunningServer) -> None:
    slug = unique("closed")
    resource = {"headwater.resource.id": "r"}
    assert (
        create(server, slug=slug, event="e", resource=resource, require_auth=True).status_code
        == 201
    )
    assert httpx.post(f"{server.url}/hooks/{slug}").status_code == 401


FORGING_TEMPLATE = """
{"event": "{{ body.event }}", "resource": {"headwater.resource.id": "{{ body.rid }}"},
 "payload": {"validated_state": {"type": "FAILED", "name": "Failed"}}}
"""


def test_no_anonymous_request_can_rewrite_a_runs_history(server: RunningServer) -> None:
    import sqlite3

    from headwater import flow
    from headwater.events import get_bus as bus

    @flow
    def real() -> int:
        return 1

    state = real(return_state=True)
    run_id = state.state_details.flow_run_id
    assert bus().flush(timeout=10)
    slug = unique("forge")
    assert create(server, slug=slug, template=FORGING_TEMPLATE).status_code == 201
    for body in [
        {"event": "headwater.flow-run.Failed", "rid": f"headwater.flow-run.{run_id}"},
        {"event": "prefect.flow-run.Failed", "rid": f"prefect.flow-run.{run_id}"},
        {"event": "innocent.looking", "rid": f"headwater.flow-run.{run_id}"},
        # a quote in a field cannot break out of its string into the event's JSON
        {
            "event": 'x", "resource": {"headwater.resource.id": "headwater.flow-run.1"}, "y": "',
            "rid": "r",
        },
    ]:
        reply = httpx.post(f"{server.url}/hooks/{slug}", json=body)
        assert reply.status_code in (204, 400), reply.text
        if body["rid"].startswith(("headwater.", "prefect.")):
            assert reply.status_code == 400 and "reserved" in reply.json()["detail"]
    assert bus().flush(timeout=10)
    path = server.state.settings.home / "headwater.db"
    with sqlite3.connect(path) as db:
        (stored,) = db.execute(
            "SELECT state_name FROM flow_runs WHERE id = ?", (str(run_id),)
        ).fetchone()
        quoted = db.execute(
            "SELECT resource_id, event FROM events WHERE event LIKE 'x\"%'"
        ).fetchall()
    assert stored == "Completed"
    assert quoted == [("r", body["event"])]  # the quote stayed inside the name


def test_untrusted_events_never_fold_into_run_rows() -> None:
    import datetime
    import uuid

    from headwater.server.wire import ReceivedEvent
    from headwater.storage.rows import build_rows

    forged = Event(
        event="anything",
        resource={"headwater.resource.id": f"headwater.flow-run.{uuid.uuid4()}"},
        payload={"validated_state": {"type": "FAILED", "name": "Failed"}},
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    assert build_rows([ReceivedEvent(forged, untrusted=True)], now).flow_runs == {}
    assert len(build_rows([ReceivedEvent(forged)], now).flow_runs) == 1


def test_credential_headers_are_masked_in_stored_events(
    server: RunningServer, events: Subscription
) -> None:
    slug = unique("headers")
    assert create(
        server, slug=slug, event="h.x", resource={"headwater.resource.id": "h"}
    ).is_success
    secret_headers = {
        "X-Gitlab-Token": "glpat-very-secret",
        "Cookie": "session=very-secret",
        "Authorization": "Bearer very-secret",
    }
    assert httpx.post(f"{server.url}/hooks/{slug}", headers=secret_headers).status_code == 204
    (event,) = [e for e in published(events) if e.event == "h.x"]
    headers = event.payload["headers"]
    assert headers["x-gitlab-token"] == "***" and headers["cookie"] == "***"
    assert headers["authorization"] == "***"
    assert "very-secret" not in str(event)


def test_a_webhook_has_a_request_and_a_failure_budget(
    server: RunningServer, events: Subscription
) -> None:
    slug = unique("budget")
    assert create(server, slug=slug, template="not json").status_code == 201
    codes = [httpx.post(f"{server.url}/hooks/{slug}", content=b"x").status_code for _ in range(60)]
    assert set(codes) == {400}
    failures = [e for e in published(events) if e.event == "headwater.webhook.failed"]
    assert len(failures) == server.state.webhook_budgets.failure_burst == 20  # of 60
    with httpx.Client() as client:
        answers = [client.post(f"{server.url}/hooks/{slug}") for _ in range(250)]
    limited = [answer for answer in answers if answer.status_code == 429]
    assert limited  # past the burst of 200 requests
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert "request budget" in limited[0].json()["detail"]


def test_a_deeply_nested_body_is_a_400_not_a_crash(server: RunningServer) -> None:
    slug = unique("deep")
    assert create(server, slug=slug, template="{{ body|tojson }}").status_code == 201
    deep = "[" * 5000 + "]" * 5000
    reply = httpx.post(
        f"{server.url}/hooks/{slug}",
        content=deep,
        headers={"content-type": "application/json"},
    )
    assert reply.status_code == 400 and "nests too deeply" in reply.json()["detail"]
    api = httpx.post(f"{server.url}/api/events", content="[" + deep + "]")
    assert api.status_code == 422
    assert httpx.get(f"{server.url}/api/health").status_code == 200
