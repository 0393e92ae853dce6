"""Delivering a notification: retries with backoff, then an event, never an exception.

A notification is a side effect of something else (a failed run, a fired automation): a Slack
outage must not fail the run that wanted to report it. So a block's ``notify``/``anotify``
tries a few times with exponential backoff (``HEADWATER_NOTIFICATIONS_RETRY_ATTEMPTS``,
``HEADWATER_NOTIFICATIONS_RETRY_DELAY``), then reports the outcome as an event,
``headwater.notification.sent`` or ``headwater.notification.failed``, plus a warning log line
on failure. It raises :class:`~headwater.exceptions.NotificationError` only inside
``with block.raise_on_failure():``, which automations use to mark their action failed.

Nothing reported carries a secret: the target is shown as ``scheme://host/***`` and every
secret fragment (URL path segments and query values, user info, custom webhook secrets) is
masked out of the reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol
from urllib.parse import unquote, urlsplit

import anyio
import anyio.to_thread

from headwater.events.emit import emit_event
from headwater.exceptions import NotificationError
from headwater.settings import get_settings

__all__ = [
    "DeliveryFailure",
    "Notifier",
    "adeliver",
    "backoff_delays",
    "deliver",
    "mask_url",
    "raising",
    "scrub",
    "url_fragments",
]

logger = logging.getLogger("headwater.notifications")


class Notifier(Protocol):
    """What delivery needs of a notification block: who it is, and what it must not leak."""

    @property
    def _block_document_id(self) -> object: ...

    @property
    def _block_document_name(self) -> str | None: ...

    def get_block_type_slug(self) -> str: ...

    def _secret_fragments(self) -> list[str]: ...

    def _masked_target(self) -> str: ...


MASKED = "***"
# Schemes whose host part is where the request goes (not a token, as in slack://TA/TB/TC).
HOST_SCHEMES = frozenset(
    {"http", "https", "json", "jsons", "form", "forms", "xml", "xmls", "workflow", "workflows"}
)
_MIN_FRAGMENT = 4  # shorter pieces of a URL (api versions, "v1") are not secrets
# Filters apply only to records created on the logger itself, so each is named.
_HTTP_LOGGERS = (
    "apprise",
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.util.retry",
    "urllib3.response",
    "requests",
)

_raising: ContextVar[frozenset[int]] = ContextVar("headwater_raise_on_failure", default=frozenset())


class DeliveryFailure(Exception):
    """One failed attempt (internal: never leaves this package).

    Attributes:
        reason: what went wrong, in words; may still hold secrets until scrubbed.
        retryable: whether another attempt may succeed (not for a refused address).
    """

    def __init__(self, reason: str, *, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


def backoff_delays(attempts: int, base: float, factor: float = 2.0) -> list[float]:
    """The waits between ``attempts`` tries: ``base``, then doubling, capped at ``10 * base``."""
    return [min(base * factor**index, base * 10) for index in range(max(attempts, 1) - 1)]


def mask_url(url: str) -> str:
    """``url`` with everything but its scheme and destination host replaced by ``***``."""
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme in HOST_SCHEMES and parts.hostname:
            host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
            port = f":{parts.port}" if parts.port else ""
            rest = f"/{MASKED}" if parts.path.strip("/") or parts.query else ""
            return f"{scheme}://{host}{port}{rest}"
    except ValueError:
        return MASKED
    return f"{scheme}://{MASKED}" if scheme else MASKED


def url_fragments(url: str) -> list[str]:
    """The pieces of ``url`` that may be secret: user info, path segments, query values,
    and the host of schemes that keep tokens there."""
    try:
        parts = urlsplit(url.strip())
        pieces = [url, parts.username or "", parts.password or "", parts.fragment]
        if parts.scheme.lower() not in HOST_SCHEMES:
            pieces.append(parts.netloc.rpartition("@")[2])
    except ValueError:
        return [url]
    pieces += parts.path.split("/")
    for pair in parts.query.split("&"):
        pieces.append(pair.partition("=")[2])
    return pieces + [unquote(piece) for piece in pieces]


def scrub(text: str, fragments: Iterable[str]) -> str:
    """``text`` with every fragment of at least four characters replaced by ``***``."""
    for fragment in sorted(
        {f for f in fragments if len(f) >= _MIN_FRAGMENT}, key=len, reverse=True
    ):
        text = text.replace(fragment, MASKED)
    return text


@contextmanager
def raising(block: object) -> Iterator[None]:
    """Make failed deliveries of ``block`` raise NotificationError in this context."""
    token = _raising.set(_raising.get() | {id(block)})
    try:
        yield
    finally:
        _raising.reset(token)


def deliver(block: Notifier, send: Callable[[], None]) -> None:
    """Call the blocking ``send`` until it succeeds or gives up, sleeping between tries."""
    settings = get_settings()
    delays = backoff_delays(
        settings.notifications_retry_attempts, settings.notifications_retry_delay
    )
    send = _redacting(send, block._secret_fragments())
    attempt = 0
    while True:
        attempt += 1
        try:
            send()
        except Exception as exc:
            failure = _as_failure(exc)
            if failure.retryable and attempt <= len(delays):
                _log_retry(block, attempt, delays[attempt - 1])
                time.sleep(delays[attempt - 1])
                continue
            _report_failure(block, attempt, failure.reason)
            return
        _report_success(block, attempt)
        return


async def adeliver(block: Notifier, send: Callable[[], None]) -> None:
    """Async twin of :func:`deliver`: ``send`` runs in a worker thread, never on the loop."""
    settings = get_settings()
    delays = backoff_delays(
        settings.notifications_retry_attempts, settings.notifications_retry_delay
    )
    send = _redacting(send, block._secret_fragments())
    attempt = 0
    while True:
        attempt += 1
        try:
            await anyio.to_thread.run_sync(send)
        except Exception as exc:
            failure = _as_failure(exc)
            if failure.retryable and attempt <= len(delays):
                _log_retry(block, attempt, delays[attempt - 1])
                await anyio.sleep(delays[attempt - 1])
                continue
            _report_failure(block, attempt, failure.reason)
            return
        _report_success(block, attempt)
        return


class _Redact(logging.Filter):
    """Mask secrets in the records one thread logs while it delivers."""

    def __init__(self, thread: int, fragments: list[str]) -> None:
        super().__init__()
        self.thread = thread
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread == self.thread:
            try:
                message = record.getMessage()
            except Exception:
                message = str(record.msg)
            record.msg, record.args = scrub(message, self.fragments), None
        return True


def _redacting(send: Callable[[], None], fragments: list[str]) -> Callable[[], None]:
    """``send``, with the HTTP libraries' own log records scrubbed of secrets meanwhile.

    urllib3 logs each request line at DEBUG (with a templated secret in the path) and apprise
    logs URLs: a filter on those loggers masks what this thread logs while it sends, so that
    turning DEBUG on never prints a secret. Other threads' records are left alone.
    """

    def redacted() -> None:
        redact = _Redact(threading.get_ident(), fragments)
        loggers = [logging.getLogger(name) for name in _HTTP_LOGGERS]
        for each in loggers:
            each.addFilter(redact)
        try:
            send()
        finally:
            for each in loggers:
                each.removeFilter(redact)

    return redacted


def _as_failure(exc: Exception) -> DeliveryFailure:
    if isinstance(exc, DeliveryFailure):
        return exc
    # A bug in a plugin or in a block: not worth retrying, and its message may hold a URL
    # (scrubbed before it is shown).
    return DeliveryFailure(f"{type(exc).__name__}: {exc}"[:500], retryable=False)


def _log_retry(block: Notifier, attempt: int, delay: float) -> None:
    logger.debug(
        "%s notification attempt %d failed; retrying in %.2f s",
        block.get_block_type_slug(),
        attempt,
        delay,
    )


def _resource(block: Notifier) -> tuple[dict[str, str], list[Mapping[str, str]]]:
    slug = block.get_block_type_slug()
    block_type = {
        "headwater.resource.id": f"headwater.block-type.{slug}",
        "headwater.resource.name": slug,
    }
    document_id = block._block_document_id
    if document_id is None:  # an unsaved block: the block type stands for it
        return block_type, []
    resource = {
        "headwater.resource.id": f"headwater.block-document.{document_id}",
        "headwater.resource.name": block._block_document_name or "",
        "headwater.block-type.slug": slug,
    }
    return resource, [{**block_type, "headwater.resource.role": "block-type"}]


def _report_success(block: Notifier, attempts: int) -> None:
    resource, related = _resource(block)
    emit_event(
        "headwater.notification.sent",
        resource=resource,
        related=related,
        payload={
            "block_type": block.get_block_type_slug(),
            "attempts": attempts,
            "target": block._masked_target(),
        },
    )


def _report_failure(block: Notifier, attempts: int, reason: str) -> None:
    slug = block.get_block_type_slug()
    reason = scrub(reason, block._secret_fragments())
    target = block._masked_target()
    resource, related = _resource(block)
    emit_event(
        "headwater.notification.failed",
        resource=resource,
        related=related,
        payload={"block_type": slug, "attempts": attempts, "target": target, "reason": reason},
    )
    if id(block) in _raising.get():
        raise NotificationError(reason, block_type=slug, attempts=attempts)
    logger.warning(
        "%s notification to %s failed after %d attempt%s: %s",
        slug,
        target,
        attempts,
        "" if attempts == 1 else "s",
        reason,
    )
