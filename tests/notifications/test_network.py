"""allow_private_urls=False: non-public addresses refused before the request and at connect."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
from notification_helpers import Receiver
from support import EventLog

from headwater.blocks.notifications import (
    AppriseNotificationBlock,
    CustomWebhookNotificationBlock,
    SlackWebhook,
)
from headwater.events import Event, get_bus
from headwater.exceptions import NotificationError
from headwater.notifications import network

PUBLIC = "93.184.216.34"


def failures(events: EventLog) -> list[Event]:
    get_bus().flush(timeout=10)
    return [e for e in events if e.event == "headwater.notification.failed"]


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
        ("not-an-address", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert network.is_public_address(address) is public


def test_first_private_address(fake_dns: Callable[[str, Any], None]) -> None:
    fake_dns("inside.example", ("10.0.0.7", None))
    fake_dns("outside.example", (PUBLIC, None))
    assert network.first_private_address("127.0.0.1") == "127.0.0.1"
    assert network.first_private_address("inside.example", 443) == "10.0.0.7"
    assert network.first_private_address("outside.example") is None
    assert network.first_private_address("does-not-resolve.invalid") is None


def test_apprise_url_to_loopback_is_refused_before_any_request(
    receiver: Receiver, events: EventLog
) -> None:
    url = f"json://127.0.0.1:{receiver.port}/"
    AppriseNotificationBlock(url=url, allow_private_urls=False).notify("no")
    AppriseNotificationBlock(url=url).notify("yes")  # allowed by default, as in Prefect
    assert [r.json()["message"] for r in receiver.requests] == ["yes"]  # type: ignore[index]
    (failed,) = failures(events)
    assert failed.payload["attempts"] == 1  # a refusal is not retried
    assert "non-public address 127.0.0.1 (allow_private_urls=False)" in failed.payload["reason"]


def test_custom_webhook_to_loopback_is_refused(receiver: Receiver) -> None:
    block = CustomWebhookNotificationBlock(
        name="x", url=f"{receiver.url}/hook", allow_private_urls=False
    )
    with block.raise_on_failure(), pytest.raises(NotificationError, match="127.0.0.1"):
        block.notify("no")
    assert receiver.requests == []


def test_dns_rebinding_is_refused_at_connect_time(
    receiver: Receiver, fake_dns: Callable[[str, Any], None], events: EventLog
) -> None:
    # The first lookup (the check before the request) says public; the next says loopback.
    answers = iter([(PUBLIC, None)])
    fake_dns("rebind.example", lambda: next(answers, ("127.0.0.1", receiver.port)))
    block = CustomWebhookNotificationBlock(
        name="x", url=f"http://rebind.example:{receiver.port}/hook", allow_private_urls=False
    )
    block.notify("no")
    assert receiver.requests == []
    (failed,) = failures(events)
    assert "non-public address 127.0.0.1" in failed.payload["reason"]


def test_apprise_plugins_are_guarded_at_connect_time_too(
    receiver: Receiver, fake_dns: Callable[[str, Any], None], events: EventLog
) -> None:
    # slack:// names no host the check before the request could resolve; the connection
    # to hooks.slack.com is still checked.
    fake_dns("hooks.slack.com", ("127.0.0.1", receiver.port))
    SlackWebhook(url="slack://T0AAAA/B0BBBB/XsecretXsecret", allow_private_urls=False).notify("x")
    assert receiver.requests == []
    (failed,) = failures(events)
    assert "non-public address 127.0.0.1" in failed.payload["reason"]
    assert failed.payload["target"] == "slack://***"
    assert "Xsecret" not in str(failed)


def test_the_guard_only_acts_inside_its_context(receiver: Receiver) -> None:
    with network.refuse_private_addresses() as guard, pytest.raises(requests.ConnectionError):
        requests.get(receiver.url, timeout=5)
    assert guard.refused == ["127.0.0.1"]
    response = requests.get(receiver.url, timeout=5)  # installed, but inactive here
    response.close()
    assert response.status_code == 200


def test_the_guard_covers_any_socket_not_only_http(receiver: Receiver) -> None:
    import socket

    with network.refuse_private_addresses() as guard:
        with pytest.raises(network.PrivateAddressRefused):
            socket.create_connection(("127.0.0.1", receiver.port), timeout=5)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with udp, pytest.raises(network.PrivateAddressRefused):
            udp.sendto(b"x", ("127.0.0.1", 9))
    assert guard.refused == ["127.0.0.1", "127.0.0.1"]
    assert receiver.requests == []
