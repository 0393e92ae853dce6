"""Concurrency and rate limits for async code (``prefect.concurrency.asyncio``).

The implementation is :mod:`headwater.concurrency.async_limits`.
"""

from headwater.concurrency.async_limits import (
    concurrency,
    rate_limit,
)

__all__ = [
    "concurrency",
    "rate_limit",
]
