"""Notification blocks (``prefect.blocks.notifications``): Slack, Teams, webhooks, apprise.

The block types are in :mod:`headwater.blocks.notifications.notifiers`; delivering what they
send (retries, events, masking secrets) is :mod:`headwater.notifications`.
"""

from headwater.blocks.notifications.notifiers import (
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
