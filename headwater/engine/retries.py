"""Retry decisions: how long to wait before attempt n. Pure functions of their inputs."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

__all__ = ["RetryDelay", "exponential_backoff", "jittered", "resolve_retry_delays", "retry_delay"]

RetryDelay = float | int | Sequence[float | int] | Callable[[int], Sequence[float]]

MAX_DELAY_ENTRIES = 50


def exponential_backoff(backoff_factor: float) -> Callable[[int], list[float]]:
    """Delays that double each attempt: ``factor * 2**attempt`` (at most 50 entries).

    Example:
        ``@task(retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=10))``
        waits 10, 20 and 40 seconds.
    """
    if backoff_factor < 0:
        raise ValueError(f"backoff_factor must be >= 0, got {backoff_factor}")

    def delays(retries: int) -> list[float]:
        return [backoff_factor * 2**attempt for attempt in range(min(retries, MAX_DELAY_ENTRIES))]

    return delays


def resolve_retry_delays(value: RetryDelay | None, retries: int, owner: str) -> tuple[float, ...]:
    """Normalise ``retry_delay_seconds`` at decoration time into a tuple of delays.

    Raises:
        ValueError: negative delays, more than 50 entries, or a value of another kind; the
            message names the task or flow.
    """
    if value is None:
        return (0.0,)
    if callable(value):
        value = value(retries)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        delays: tuple[float, ...] = (float(value),)
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if len(value) > MAX_DELAY_ENTRIES:
            raise ValueError(
                f"{owner}: retry_delay_seconds has {len(value)} entries; at most "
                f"{MAX_DELAY_ENTRIES} are allowed"
            )
        delays = tuple(float(item) for item in value) or (0.0,)
    else:
        raise ValueError(
            f"{owner}: retry_delay_seconds must be a number, a list of numbers or a callable, "
            f"got {value!r}"
        )
    if any(delay < 0 or math.isnan(delay) for delay in delays):
        raise ValueError(f"{owner}: retry_delay_seconds must not be negative, got {delays}")
    return delays


def retry_delay(delays: Sequence[float], attempt: int) -> float:
    """The delay before retry number ``attempt`` (0-based); the last entry repeats."""
    return delays[min(attempt, len(delays) - 1)]


def jittered(base: float, jitter_factor: float | None, rng: random.Random | None = None) -> float:
    """Spread ``base`` so that many failing runs do not retry in lockstep.

    Draws from an exponential distribution with mean ``base`` truncated at
    ``base * (1 + jitter_factor)`` (Prefect's clamped Poisson interval). No jitter when
    the base is 0 or no factor is set.
    """
    if not jitter_factor or base <= 0:
        return base
    upper = base * (1 + jitter_factor)
    draw = (rng or random).random()
    lowest = math.exp(-upper / base)
    # inverse CDF of the exponential, restricted to (0, upper]
    return -math.log(lowest + (1 - lowest) * draw) * base
