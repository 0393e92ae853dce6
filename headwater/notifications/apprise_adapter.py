"""The apprise adapter: load it cleanly, build one plugin per URL, send, explain failures.

Apprise is imported on first use (it loads ~150 plugin modules), so programs that never
notify do not pay for it. Its plugins are blocking (``requests``): :func:`send` must run off
the event loop, which the delivery module ensures. A plugin reports failure as ``False`` and
a log record; :func:`send` collects the warnings that this thread's send logged on the
``apprise`` logger and turns them into the failure's reason (the adapter boundary, as in
STYLE.md): no apprise exception or log format leaks further.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from headwater.notifications.delivery import DeliveryFailure

__all__ = ["APP_ID", "instantiate", "send", "workflows_url"]

APP_ID = "Headwater Notifications"
"""How headwater identifies itself to notification services (the User-Agent, the app name)."""

_lock = threading.Lock()
_asset: Any = None


def _apprise() -> Any:
    """The apprise module, with its plugins loaded once (and its import-time noise handled)."""
    global _asset
    with _lock:
        import apprise

        if _asset is None:
            with warnings.catch_warnings():
                # Apprise's PGP support imports the standard library's imghdr, deprecated
                # since Python 3.11; the warning is theirs and says nothing about our use.
                warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*imghdr.*")
                try:
                    from apprise.manager_plugins import NotificationManager

                    NotificationManager().load_modules()
                except ImportError:  # older apprise: plugins load on first lookup
                    apprise.Apprise.instantiate("json://localhost", suppress_exceptions=True)
            # storage_mode="memory": never write apprise's persistent cache to disk.
            _asset = apprise.AppriseAsset(app_id=APP_ID, app_desc=APP_ID, storage_mode="memory")
        return apprise


def instantiate(url: str) -> Any:
    """The apprise plugin for ``url``, or None when apprise does not understand it."""
    apprise = _apprise()
    return apprise.Apprise.instantiate(url, asset=_asset, suppress_exceptions=True)


def workflows_url(native_url: str, *, include_image: bool, wrap: bool) -> str | None:
    """The ``workflows://`` apprise URL for a Microsoft Teams (Power Automate) Workflows URL.

    Returns None when ``native_url`` is not a Workflows URL; a ``workflow(s)://`` URL is
    accepted as it is, with the image and wrap options applied.
    """
    _apprise()
    from apprise.plugins.workflows import NotifyWorkflows

    parsed = NotifyWorkflows.parse_native_url(native_url)
    if not parsed and native_url.split("://", 1)[0].lower() in ("workflow", "workflows"):
        parsed = NotifyWorkflows.parse_url(native_url)
    if not parsed:
        return None
    parsed.update(include_image=include_image, wrap=wrap)
    url: str = NotifyWorkflows(**parsed).url()
    return url


def send(url: str, body: str, title: str, notify_type: str) -> None:
    """Deliver one notification through apprise, in the calling thread.

    Raises:
        DeliveryFailure: apprise does not understand the URL, or the plugin reported failure.
    """
    apprise = _apprise()
    plugin = instantiate(url)
    if plugin is None:
        raise DeliveryFailure("apprise does not understand this URL", retryable=False)
    with _captured_warnings() as messages:
        delivered = plugin.notify(
            body=body, title=title, notify_type=apprise.NotifyType(notify_type)
        )
    if not delivered:
        raise DeliveryFailure(" ".join(messages) or "apprise reported the delivery as failed")


class _ThreadHandler(logging.Handler):
    def __init__(self, thread: int) -> None:
        super().__init__(logging.WARNING)
        self.thread = thread
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            try:
                self.messages.append(record.getMessage())
            except Exception:  # a broken record must not break the delivery
                self.messages.append(str(record.msg))


@contextmanager
def _captured_warnings() -> Iterator[list[str]]:
    # Only this thread's records: other deliveries may run at the same time.
    handler = _ThreadHandler(threading.get_ident())
    apprise_logger = logging.getLogger("apprise")
    apprise_logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        apprise_logger.removeHandler(handler)
