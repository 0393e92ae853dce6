"""Concurrency and rate limits for sync code (``prefect.concurrency.sync``).

The implementation is :mod:`headwater.concurrency.sync_limits`.
"""

from headwater.concurrency.sync_limits import (
    concurrency,
    rate_limit,
)

__all__ = [
    "concurrency",
    "rate_limit",
]
