"""Token buckets: how much of something one caller may spend, refilled over time (pure).

The server gives each inbound webhook a budget of requests and of failure events, so that
one noisy or hostile sender neither floods the bus nor fills the database.
"""

from __future__ import annotations

__all__ = ["TokenBucket", "WebhookBudgets"]


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


class WebhookBudgets:
    """Each webhook's request and failure-event budgets, in one server process.

    Requests: a burst of ``request_burst``, then ``request_rate`` a second. Failure events
    (``headwater.webhook.failed``): a burst of ``failure_burst``, then ``failure_rate`` a
    second; further failures are answered but not recorded.
    """

    def __init__(
        self,
        request_burst: float = 200.0,
        request_rate: float = 50.0,
        failure_burst: float = 20.0,
        failure_rate: float = 0.1,
    ) -> None:
        self.request_burst, self.request_rate = request_burst, request_rate
        self.failure_burst, self.failure_rate = failure_burst, failure_rate
        self._requests: dict[str, TokenBucket] = {}
        self._failures: dict[str, TokenBucket] = {}

    def request(self, slug: str, now: float) -> float:
        """0 when the request may go on, else the seconds to wait (a 429's Retry-After)."""
        bucket = self._requests.get(slug)
        if bucket is None:
            bucket = self._requests[slug] = TokenBucket(self.request_burst, self.request_rate, now)
        return 0.0 if bucket.take(now) else max(bucket.wait_for(), 0.001)

    def failure(self, slug: str, now: float) -> bool:
        """Whether this failure may be recorded as an event."""
        bucket = self._failures.get(slug)
        if bucket is None:
            bucket = self._failures[slug] = TokenBucket(self.failure_burst, self.failure_rate, now)
        return bucket.take(now)
