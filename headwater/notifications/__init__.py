"""Notification delivery: retries with backoff, an event per outcome, no secret leaked.

The notification block types (Slack, Microsoft Teams, a custom webhook, any apprise URL)
are blocks, at Prefect's path :mod:`headwater.blocks.notifications`; this package is what
they send with: :mod:`~headwater.notifications.delivery` (retries, the
``headwater.notification.sent`` / ``.failed`` events, URL masking),
:mod:`~headwater.notifications.apprise_adapter`, :mod:`~headwater.notifications.network`
(no private addresses) and :mod:`~headwater.notifications.templates`. Importing it does
not import apprise.
"""

from headwater.notifications.delivery import (
    DeliveryFailure,
    Notifier,
    adeliver,
    deliver,
    mask_url,
    raising,
)

__all__ = ["DeliveryFailure", "Notifier", "adeliver", "deliver", "mask_url", "raising"]
