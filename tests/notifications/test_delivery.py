"""The delivery rules: backoff, masking URLs and reasons, raise_on_failure scoping."""

from __future__ import annotations

import pytest

from headwater.notifications.delivery import backoff_delays, mask_url, scrub, url_fragments


def test_backoff_doubles_and_is_bounded() -> None:
    assert backoff_delays(3, 0.5) == [0.5, 1.0]
    assert backoff_delays(1, 0.5) == []
    assert backoff_delays(0, 0.5) == []
    assert backoff_delays(8, 1.0) == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("https://hooks.slack.com/services/A/B/C", "https://hooks.slack.com/***"),
        ("https://user:pw@example.com:8443/x?token=t", "https://example.com:8443/***"),
        ("https://example.com", "https://example.com"),
        ("json://[::1]:80/path", "json://[::1]:80/***"),
        ("slack://TA/TB/TC", "slack://***"),
        ("mailtos://user:password@gmail.com", "mailtos://***"),
        ("not a url", "***"),
        ("http://host:notaport/", "***"),
    ],
)
def test_mask_url_keeps_scheme_and_destination_only(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_scrub_masks_every_secret_fragment_of_a_url() -> None:
    url = "https://bot:p%40ssword@example.com/hooks/TOKEN1234?sig=SIGNATURE&v=1"
    fragments = url_fragments(url)
    text = f"failed: {url} (TOKEN1234, p@ssword, SIGNATURE)"
    scrubbed = scrub(text, fragments)
    for secret in ("TOKEN1234", "p@ssword", "p%40ssword", "SIGNATURE"):
        assert secret not in scrubbed
    assert scrub("v=1 and api", ["1", "api"]) == "v=1 and api"  # too short to be secrets
    assert "TA12" not in scrub("slack://TA12/TB/TC failed", url_fragments("slack://TA12/TB/TC"))
