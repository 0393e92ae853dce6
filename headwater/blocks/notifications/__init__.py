"""Notification blocks at Prefect's path (``prefect.blocks.notifications``).

The implementation is :mod:`headwater.notifications`; this face only hands its names on.
"""

from headwater.notifications import (
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
