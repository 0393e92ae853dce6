"""Token buckets: how much of something one caller may spend, refilled over time (pure).

The server gives each inbound webhook a budget of requests and of failure events, so that
one noisy or hostile sender neither floods the bus nor fills the database.
"""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` per second; the clock is passed in.

    A pure decision: :meth:`take` answers from the times it is given, so tests need no sleep.
    """

    __slots__ = ("capacity", "rate", "_tokens", "_at")

    def __init__(self, capacity: float, rate: float, now: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self._tokens = capacity
        self._at = now

    def take(self, now: float, amount: float = 1.0) -> bool:
        """Spend ``amount`` tokens if there are that many at ``now``; True when spent."""
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < amount:
            return False
        self._tokens -= amount
        return True

    def wait_for(self, amount: float = 1.0) -> float:
        """Seconds until ``amount`` tokens are there (0 when they are now)."""
        return max(0.0, (amount - self._tokens) / self.rate) if self.rate > 0 else float("inf")
