"""Token buckets and webhook budgets, on a clock the test holds."""

from __future__ import annotations

from headwater.server.budget import TokenBucket, WebhookBudgets


def test_a_bucket_spends_its_burst_then_refills_at_its_rate() -> None:
    bucket = TokenBucket(capacity=3, rate=2.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_for() == 0.5
    assert not bucket.take(0.25) and bucket.take(0.5)
    assert bucket.take(100.0) and bucket.take(100.0) and bucket.take(100.0)  # capped at 3
    assert not bucket.take(100.0)


def test_each_webhook_has_budgets_of_its_own() -> None:
    budgets = WebhookBudgets(request_burst=1, request_rate=1, failure_burst=1, failure_rate=1)
    assert budgets.request("a", 0.0) == 0.0
    assert budgets.request("a", 0.0) == 1.0  # wait a second
    assert budgets.request("b", 0.0) == 0.0  # another webhook is not held back
    assert budgets.failure("a", 0.0) and not budgets.failure("a", 0.5)
