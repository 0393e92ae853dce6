"""Notifications: Slack, Microsoft Teams, a custom webhook or any apprise URL, as blocks.

Delivery retries with backoff and reports ``headwater.notification.sent`` / ``.failed``;
nothing reported carries a secret. Prefect's import path for the same classes is
:mod:`headwater.blocks.notifications`. Importing this package does not import apprise.
"""

from headwater.notifications.blocks import (
    AbstractAppriseNotificationBlock,
    AppriseNotificationBlock,
    CustomWebhookNotificationBlock,
    MicrosoftTeamsWebhook,
    NotificationBlock,
    SlackWebhook,
)

__all__ = [
    "NotificationBlock",
    "AbstractAppriseNotificationBlock",
    "AppriseNotificationBlock",
    "SlackWebhook",
    "MicrosoftTeamsWebhook",
    "CustomWebhookNotificationBlock",
]
