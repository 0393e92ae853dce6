"""Notification blocks (``prefect.blocks.notifications``): Slack, Microsoft Teams, any apprise
URL, and a custom webhook.

Every block has ``notify(body, subject=None)`` and its async twin ``anotify``. A delivery is
tried a few times with backoff, then reported as a ``headwater.notification.sent`` or
``.failed`` event; it never raises into the caller, except inside
``with block.raise_on_failure():`` (see :mod:`headwater.notifications.delivery`). The sending is
blocking (apprise, ``requests``) and runs in a worker thread under ``anotify``, never on the
event loop. With ``allow_private_urls=False`` a delivery to a loopback, private or otherwise
non-public address is refused (see :mod:`headwater.notifications.network`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import requests

from headwater.blocks.block import Block
from headwater.blocks.fields import SecretDict, SecretStr
from headwater.exceptions import InvalidBlockError, UnknownPlaceholderError
from headwater.notifications import apprise_adapter, network
from headwater.notifications.delivery import (
    DeliveryFailure,
    adeliver,
    deliver,
    mask_url,
    raising,
    url_fragments,
)
from headwater.notifications.templates import placeholders, render

__all__ = [
    "NotificationBlock",
    "AbstractAppriseNotificationBlock",
    "AppriseNotificationBlock",
    "SlackWebhook",
    "MicrosoftTeamsWebhook",
    "CustomWebhookNotificationBlock",
]

NotifyType = Literal["info", "success", "warning", "failure"]
_RETRY_STATUSES = frozenset({408, 425, 429})


class NotificationBlock(Block, kw_only=True):
    """Base of blocks that can ``notify`` (Prefect's notify capability).

    Attributes:
        allow_private_urls: False refuses to deliver to loopback, private, link-local and
            other non-public addresses, both before the request and at connect time.
    """

    _abstract: ClassVar[bool] = True

    allow_private_urls: bool = True

    def notify(self, body: str, subject: str | None = None) -> None:
        """Send ``body`` (titled ``subject``), retrying; a failure is reported, not raised.

        Raises:
            NotificationError: delivery failed, only inside :meth:`raise_on_failure`.
        """
        deliver(self, functools.partial(self._send, body, subject))

    async def anotify(self, body: str, subject: str | None = None) -> None:
        """Async twin of :meth:`notify`; the blocking send runs in a worker thread."""
        await adeliver(self, functools.partial(self._send, body, subject))

    def raise_on_failure(self) -> contextlib.AbstractContextManager[None]:
        """Inside this context a failed delivery raises NotificationError (after retries).

        Scoped to the current thread or task, so a block shared by several callers keeps the
        default behaviour for the others.
        """
        return raising(self)

    def _send(self, body: str, subject: str | None) -> None:
        """Deliver once, blocking; raise DeliveryFailure on failure."""
        raise NotImplementedError

    def _masked_target(self) -> str:
        """Where notifications go, safe to show (``scheme://host/***``)."""
        raise NotImplementedError

    def _secret_fragments(self) -> list[str]:
        """Strings to mask out of failure reasons."""
        raise NotImplementedError

    @contextlib.contextmanager
    def _guarded(self, url: str) -> Iterator[network.ConnectionGuard | None]:
        """Refuse non-public destinations when asked: now, and at every connection."""
        if self.allow_private_urls:
            yield None
            return
        destination = _destination(url)
        if destination is not None:
            refused = network.first_private_address(*destination)
            if refused is not None:
                raise DeliveryFailure(_refusal(refused), retryable=False)
        with network.refuse_private_addresses() as guard:
            yield guard


class AbstractAppriseNotificationBlock(NotificationBlock, kw_only=True):
    """Base of the blocks that deliver through an apprise plugin.

    Attributes:
        notify_type: the apprise notification type, shown as colour or icon by most services.
    """

    _abstract: ClassVar[bool] = True

    notify_type: NotifyType = "info"

    def _apprise_url(self) -> str:
        raise NotImplementedError

    def _user_url(self) -> str:
        url: SecretStr = getattr(self, "url")  # noqa: B009  # every subclass has one
        return url.get_secret_value()

    def _send(self, body: str, subject: str | None) -> None:
        with self._guarded(self._user_url()) as guard:
            try:
                apprise_adapter.send(self._apprise_url(), body, subject or "", self.notify_type)
            except DeliveryFailure:
                if guard is not None and guard.refused:
                    raise DeliveryFailure(_refusal(guard.refused[0]), retryable=False) from None
                raise

    def _masked_target(self) -> str:
        return mask_url(self._user_url())

    def _secret_fragments(self) -> list[str]:
        return url_fragments(self._user_url()) + url_fragments(self._apprise_url())

    def _check_url(self) -> None:
        if apprise_adapter.instantiate(self._apprise_url()) is None:
            raise InvalidBlockError(f"{type(self).__name__}.url is not a URL apprise supports")


class AppriseNotificationBlock(AbstractAppriseNotificationBlock, kw_only=True):
    """Notify through any apprise URL (``json://``, ``ntfys://``, ``mailtos://``...).

    Attributes:
        url: the apprise URL; secret, since most embed a token or a password.
    """

    _block_type_slug: ClassVar[str] = "apprise"

    url: SecretStr

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_url()

    def _apprise_url(self) -> str:
        return self.url.get_secret_value()


class SlackWebhook(AbstractAppriseNotificationBlock, kw_only=True):
    """Post to a Slack incoming webhook.

    Attributes:
        url: ``https://hooks.slack.com/services/T.../B.../...`` (``hooks.slack-gov.com`` too),
            or an apprise ``slack://`` URL.
    """

    _block_type_slug: ClassVar[str] = "slack-webhook"

    url: SecretStr

    def __post_init__(self) -> None:
        super().__post_init__()
        plugin = apprise_adapter.instantiate(self._apprise_url())
        if plugin is None or type(plugin).__name__ != "NotifySlack":
            raise InvalidBlockError(
                "SlackWebhook.url is not a Slack webhook URL; expected "
                "https://hooks.slack.com/services/<A>/<B>/<C>"
            )

    def _apprise_url(self) -> str:
        # apprise reads Slack's own webhook URLs directly
        return self.url.get_secret_value()


class MicrosoftTeamsWebhook(AbstractAppriseNotificationBlock, kw_only=True):
    """Post to a Microsoft Teams channel through a Power Automate "Workflows" webhook.

    Attributes:
        url: the Workflows URL Teams gives
            (``https://<host>/workflows/<id>/triggers/manual/paths/invoke?...&sig=...``).
        include_image: show the notification type's icon in the card.
        wrap: wrap long lines in the card instead of truncating them.
    """

    _block_type_slug: ClassVar[str] = "ms-teams-webhook"

    url: SecretStr
    include_image: bool = True
    wrap: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        converted = apprise_adapter.workflows_url(
            self.url.get_secret_value(), include_image=self.include_image, wrap=self.wrap
        )
        if converted is None:
            raise InvalidBlockError(
                "MicrosoftTeamsWebhook.url is not a Teams Workflows URL; expected "
                "https://<host>/workflows/<id>/triggers/manual/paths/invoke?...&sig=<signature>"
            )
        self.__dict__["_converted_url"] = converted

    def _apprise_url(self) -> str:
        converted: str = self.__dict__["_converted_url"]
        return converted


class CustomWebhookNotificationBlock(NotificationBlock, kw_only=True):
    """Call any HTTP endpoint, with ``{{key}}`` placeholders filled in for each notification.

    Placeholders may appear in every string of ``url``, ``params``, ``json_data``,
    ``form_data``, ``headers`` and ``cookies``; the keys are ``subject`` (``"null"`` when
    there is none), ``body``, ``name`` and the keys of ``secrets``. An unknown key fails when
    the block is built. A response status of 400 or more is a failed delivery.

    Attributes:
        name: the webhook's name, available as ``{{name}}``.
        url: the URL to call (http or https).
        method: the HTTP method.
        params: query parameters.
        json_data: a JSON body (not together with ``form_data``).
        form_data: a form body: a mapping, or a raw string.
        headers: request headers; the User-Agent defaults to "Headwater Notifications".
        cookies: cookies to send.
        timeout: seconds to wait for the answer.
        secrets: values for placeholders that must stay secret (tokens, passwords).
    """

    _block_type_slug: ClassVar[str] = "custom-webhook"

    name: str
    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    params: dict[str, str] | None = None
    json_data: dict[str, Any] | None = None
    form_data: dict[str, str] | str | None = None
    headers: dict[str, str] | None = None
    cookies: dict[str, str] | None = None
    timeout: float = 10.0
    secrets: SecretDict = SecretDict()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.json_data is not None and self.form_data is not None:
            raise InvalidBlockError(
                "CustomWebhookNotificationBlock takes json_data or form_data, not both"
            )
        if urlsplit(self.url).scheme.lower() not in ("http", "https", ""):
            raise InvalidBlockError("CustomWebhookNotificationBlock.url must be an http(s) URL")
        allowed = sorted({"subject", "body", "name", *self.secrets.keys()})
        templates = [self.url, self.params, self.json_data, self.form_data, self.headers]
        for used in sorted(placeholders([*templates, self.cookies])):
            if used not in allowed:
                raise UnknownPlaceholderError(used, allowed)
        if not (self.timeout > 0):
            raise InvalidBlockError("CustomWebhookNotificationBlock.timeout must be positive")

    def _request(self, body: str, subject: str | None) -> dict[str, Any]:
        values: dict[str, Any] = self.secrets.get_secret_value()
        values.update(subject="null" if subject is None else subject, body=body, name=self.name)
        headers = {
            "User-Agent": apprise_adapter.APP_ID,
            **render(self.headers or {}, values),
        }
        return {
            "method": self.method,
            "url": render(self.url, values),
            "params": render(self.params, values),
            "json": render(self.json_data, values),
            "data": render(self.form_data, values),
            "headers": headers,
            "cookies": render(self.cookies, values),
        }

    def _send(self, body: str, subject: str | None) -> None:
        request = self._request(body, subject)
        host = urlsplit(request["url"]).hostname or "the webhook"
        with self._guarded(request["url"]) as guard:
            try:
                with requests.Session() as session:
                    response = session.request(
                        **request, timeout=self.timeout, allow_redirects=False
                    )
                    status, phrase = response.status_code, response.reason
                    response.close()
            except requests.Timeout:
                raise DeliveryFailure(f"{host} did not answer within {self.timeout:g} s") from None
            except requests.RequestException as exc:
                if guard is not None and guard.refused:
                    raise DeliveryFailure(_refusal(guard.refused[0]), retryable=False) from None
                raise DeliveryFailure(f"could not reach {host} ({type(exc).__name__})") from None
        if status >= 400:
            raise DeliveryFailure(
                f"{host} answered HTTP {status} {phrase or ''}".rstrip(),
                retryable=status >= 500 or status in _RETRY_STATUSES,
            )

    def _masked_target(self) -> str:
        return mask_url(self.url)

    def _secret_fragments(self) -> list[str]:
        values = self.secrets.get_secret_value().values()
        return url_fragments(self.url) + [v if isinstance(v, str) else str(v) for v in values]


def _destination(url: str) -> tuple[str, int | None] | None:
    """The host and port a URL's request goes to, when the URL says so plainly."""
    try:
        parts = urlsplit(url)
        if parts.scheme.lower() in _HOST_SCHEMES and parts.hostname:
            return parts.hostname, parts.port
    except ValueError:
        pass
    return None


_HOST_SCHEMES = frozenset({"http", "https", "json", "jsons", "form", "forms", "xml", "xmls"})


def _refusal(address: str) -> str:
    return f"refused to connect to the non-public address {address} (allow_private_urls=False)"
