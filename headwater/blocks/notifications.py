"""Notification blocks (``prefect.blocks.notifications``)."""

from headwater.blocks._notifications import (
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
