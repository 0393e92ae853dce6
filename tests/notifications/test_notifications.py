"""Notification blocks end to end, against real HTTP(S) receivers on 127.0.0.1."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from notification_helpers import Receiver, make_certificates
from support import EventLog

from headwater.blocks import Block
from headwater.blocks.notifications import (
    AppriseNotificationBlock,
    CustomWebhookNotificationBlock,
    MicrosoftTeamsWebhook,
    SlackWebhook,
)
from headwater.events import Event, get_bus
from headwater.exceptions import InvalidBlockError, NotificationError, UnknownPlaceholderError
from headwater.notifications import apprise_adapter

TOKEN = "s3cr3t-t0ken-value"
SLACK_URL = "https://hooks.slack.com/services/T0AAAA/B0BBBB/XsecretXsecretXsecret"
TEAMS_HOST = "prod-01.westus.logic.azure.com"
TEAMS_URL = (
    f"https://{TEAMS_HOST}:443/workflows/0f1e2d3c4b5a/triggers/manual/paths/invoke"
    "?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=SIGxsecretxSIG"
)


def webhook(receiver: Receiver, **fields: Any) -> CustomWebhookNotificationBlock:
    defaults: dict[str, Any] = {
        "name": "ops",
        "url": f"{receiver.url}/hook/{{{{token}}}}",
        "json_data": {"title": "{{subject}}", "text": "{{body}} from {{name}}", "n": "{{count}}"},
        "headers": {"Authorization": "Bearer {{token}}"},
        "params": {"source": "headwater"},
        "secrets": {"token": TOKEN, "count": 3},
    }
    return CustomWebhookNotificationBlock(**{**defaults, **fields})


def notifications(events: EventLog) -> list[Event]:
    get_bus().flush(timeout=10)
    return [e for e in events if e.event.startswith("headwater.notification.")]


def test_custom_webhook_sends_the_rendered_request(
    receiver: Receiver, events: EventLog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    block = webhook(receiver)
    block.notify("disk full", subject="Alert")
    (request,) = receiver.requests
    assert (request.method, request.path, request.query) == (
        "POST",
        f"/hook/{TOKEN}",
        "source=headwater",
    )
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["user-agent"] == "Headwater Notifications"
    assert request.json() == {"title": "Alert", "text": "disk full from ops", "n": 3}
    (sent,) = notifications(events)
    assert sent.event == "headwater.notification.sent"
    assert sent.payload == {
        "block_type": "custom-webhook",
        "attempts": 1,
        "target": f"http://127.0.0.1:{receiver.port}/***",
    }
    for text in (repr(block), str(block.public_data()), caplog.text, str(sent)):
        assert TOKEN not in text


def test_custom_webhook_subject_defaults_to_null_and_form_data(receiver: Receiver) -> None:
    webhook(receiver, json_data=None, form_data={"s": "{{subject}}", "b": "{{body}}"}).notify("x")
    webhook(receiver, json_data=None, form_data="raw {{body}}", method="PUT").notify("y")
    webhook(receiver, json_data=None, method="GET", params={"q": "{{body}}"}).notify("z")
    form, raw, get = receiver.requests
    assert form.body == b"s=null&b=x"
    assert form.headers["content-type"] == "application/x-www-form-urlencoded"
    assert (raw.method, raw.body) == ("PUT", b"raw y")
    assert (get.method, get.query) == ("GET", "q=z")


def test_custom_webhook_templates_are_checked_when_built(receiver: Receiver) -> None:
    with pytest.raises(UnknownPlaceholderError, match=r"\{\{tokn\}\}.*body, count, name") as e:
        webhook(receiver, headers={"X": "{{tokn}}"})
    assert isinstance(e.value, KeyError) and isinstance(e.value, ValueError)
    with pytest.raises(InvalidBlockError, match="json_data or form_data, not both"):
        webhook(receiver, form_data={"a": "b"})
    with pytest.raises(InvalidBlockError, match="method: Invalid enum value 'TRACE'"):
        webhook(receiver, method="TRACE")


def test_apprise_json_url_sends_apprise_json_body(receiver: Receiver, events: EventLog) -> None:
    block = AppriseNotificationBlock(
        url=f"json://127.0.0.1:{receiver.port}/notify", notify_type="warning"
    )
    block.notify("the body", subject="the title")
    (request,) = receiver.requests
    assert (request.method, request.path) == ("POST", "/notify")
    payload = request.json()
    assert isinstance(payload, dict)
    assert {k: payload[k] for k in ("version", "title", "message", "type")} == {
        "version": "1.0",
        "title": "the title",
        "message": "the body",
        "type": "warning",
    }
    assert payload["attachments"] == []
    assert [e.event for e in notifications(events)] == ["headwater.notification.sent"]


@pytest.fixture
def saas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_dns: Callable[[str, Any], None]
) -> Any:
    """An HTTPS receiver that hooks.slack.com and the Teams host resolve to, with a CA that
    requests trusts: what apprise sends goes over TLS, as it would to the real service."""
    ca_file, context = make_certificates(tmp_path, ["hooks.slack.com", TEAMS_HOST])
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    with Receiver(tls=context) as running:
        fake_dns("hooks.slack.com", ("127.0.0.1", running.port))
        fake_dns(TEAMS_HOST, ("127.0.0.1", running.port))
        yield running


def test_slack_webhook_posts_to_the_webhook_path(saas: Receiver) -> None:
    SlackWebhook(url=SLACK_URL, notify_type="failure").notify("run *failed*", subject="prod")
    (request,) = saas.requests
    assert (request.method, request.path) == (
        "POST",
        "/services/T0AAAA/B0BBBB/XsecretXsecretXsecret",
    )
    assert request.headers["content-type"].startswith("application/json")
    assert request.headers["user-agent"] == "Headwater Notifications"
    payload = request.json()
    assert isinstance(payload, dict)
    (attachment,) = payload["attachments"]
    assert (attachment["title"], attachment["text"]) == ("prod", "run *failed*")


def test_teams_webhook_posts_an_adaptive_card(saas: Receiver) -> None:
    MicrosoftTeamsWebhook(url=TEAMS_URL, include_image=False).notify("deploy done", subject="CD")
    (request,) = saas.requests
    assert request.method == "POST"
    assert request.path == "/workflows/0f1e2d3c4b5a/triggers/manual/paths/invoke"
    assert "sig=SIGxsecretxSIG" in request.query and "api-version=2016-06-01" in request.query
    payload = request.json()
    assert isinstance(payload, dict)
    (attachment,) = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    texts = {item.get("id"): item for item in attachment["content"]["body"]}
    assert texts["title"]["text"] == "CD"
    assert (texts["body"]["text"], texts["body"]["wrap"]) == ("deploy done", True)
    assert not any(item["type"] == "Image" for item in attachment["content"]["body"])


def test_teams_url_is_converted_with_its_options() -> None:
    block = MicrosoftTeamsWebhook(url=TEAMS_URL, include_image=False, wrap=False)
    converted = block._apprise_url()
    assert converted.startswith(f"workflow://{TEAMS_HOST}:443/0f1e2d3c4b5a/SIGxsecretxSIG/")
    assert "image=no" in converted and "wrap=no" in converted
    assert "SIGx" not in repr(block)


@pytest.mark.parametrize(
    ("cls", "url", "message"),
    [
        (SlackWebhook, "https://example.com/services/secretpath", "not a Slack webhook URL"),
        (MicrosoftTeamsWebhook, "https://example.com/secretpath?sig=x", "not a Teams Workflows"),
        (AppriseNotificationBlock, "nosuchscheme://secretpath", "not a URL apprise supports"),
    ],
)
def test_bad_urls_are_refused_without_showing_them(cls: type, url: str, message: str) -> None:
    with pytest.raises(InvalidBlockError, match=message) as caught:
        cls(url=url)
    assert "secretpath" not in str(caught.value)


def test_failures_are_retried_then_reported_not_raised(
    events: EventLog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with Receiver(statuses=(500,)) as receiver:
        webhook(receiver).notify("body")  # returns normally
    assert len(receiver.requests) == 3
    (failed,) = notifications(events)
    assert failed.event == "headwater.notification.failed"
    assert failed.payload["attempts"] == 3
    assert failed.payload["reason"] == "127.0.0.1 answered HTTP 500 Internal Server Error"
    assert "failed after 3 attempts" in caplog.text
    assert TOKEN not in caplog.text and TOKEN not in str(failed)


def test_a_retry_that_succeeds_is_sent(events: EventLog) -> None:
    with Receiver(statuses=(503, 200)) as receiver:
        webhook(receiver).notify("body")
    assert len(receiver.requests) == 2
    (sent,) = notifications(events)
    assert (sent.event, sent.payload["attempts"]) == ("headwater.notification.sent", 2)


def test_client_errors_are_not_retried(events: EventLog) -> None:
    with Receiver(statuses=(404,)) as receiver:
        webhook(receiver).notify("body")
    assert len(receiver.requests) == 1
    assert notifications(events)[0].payload["attempts"] == 1


def test_apprise_failures_are_retried_and_explained(events: EventLog) -> None:
    with Receiver(statuses=(500,)) as receiver:
        block = AppriseNotificationBlock(url=f"json://127.0.0.1:{receiver.port}/x/{TOKEN}")
        block.notify("body")
    assert len(receiver.requests) == 3
    (failed,) = notifications(events)
    assert "error=500" in failed.payload["reason"]
    assert failed.payload["target"] == f"json://127.0.0.1:{receiver.port}/***"
    assert TOKEN not in str(failed)


def test_raise_on_failure_raises_notification_error(events: EventLog) -> None:
    with Receiver(statuses=(500,)) as receiver:
        block = webhook(receiver)
        with block.raise_on_failure(), pytest.raises(NotificationError) as caught:
            block.notify("body")
        block.notify("outside the context: reported only")
    assert caught.value.attempts == 3
    assert caught.value.block_type == "custom-webhook"
    assert "HTTP 500" in caught.value.reason and caught.value.log == caught.value.reason
    assert TOKEN not in str(caught.value)
    assert [e.event for e in notifications(events)] == ["headwater.notification.failed"] * 2


@pytest.mark.anyio
async def test_anotify_sends_off_the_event_loop(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    real_send = apprise_adapter.send

    def spying_send(*args: Any) -> None:
        threads.append(threading.get_ident())
        real_send(*args)

    monkeypatch.setattr(apprise_adapter, "send", spying_send)
    await AppriseNotificationBlock(url=f"json://127.0.0.1:{receiver.port}/").anotify("async")
    await webhook(receiver).anotify("async too")
    assert threads and threading.get_ident() not in threads
    assert [r.json()["message" if i == 0 else "text"] for i, r in enumerate(receiver.requests)] == [  # type: ignore[index]
        "async",
        "async too from ops",
    ]


@pytest.mark.anyio
async def test_anotify_raise_on_failure() -> None:
    with Receiver(statuses=(500,)) as receiver:
        block = webhook(receiver)
        with block.raise_on_failure(), pytest.raises(NotificationError):
            await block.anotify("body")
        await block.anotify("reported only")
    assert len(receiver.requests) == 6


def test_saved_blocks_notify_as_their_document(receiver: Receiver, events: EventLog) -> None:
    document_id = webhook(receiver).save("ops-hook")
    loaded = Block.load("custom-webhook/ops-hook")
    assert isinstance(loaded, CustomWebhookNotificationBlock)
    loaded.notify("from a saved block")
    (sent,) = notifications(events)
    assert sent.resource_id == f"headwater.block-document.{document_id}"
    assert sent.resource.name == "ops-hook"
    assert receiver.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_saved_slack_and_teams_blocks_round_trip() -> None:
    SlackWebhook(url=SLACK_URL).save("alerts")
    MicrosoftTeamsWebhook(url=TEAMS_URL, wrap=False).save("team")
    assert SlackWebhook.load("alerts").url.get_secret_value() == SLACK_URL
    teams = MicrosoftTeamsWebhook.load("team")
    assert teams.wrap is False and "wrap=no" in teams._apprise_url()


def test_raise_on_failure_is_scoped_to_its_thread(events: EventLog) -> None:
    outcome: list[BaseException | None] = []
    with Receiver(statuses=(500,)) as receiver:
        block = webhook(receiver)

        def elsewhere() -> None:
            try:
                block.notify("from another thread")
                outcome.append(None)
            except BaseException as exc:  # pragma: no cover - the failure being tested
                outcome.append(exc)

        with block.raise_on_failure():
            thread = threading.Thread(target=elsewhere)
            thread.start()
            thread.join(10)
    assert outcome == [None]
