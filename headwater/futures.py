"""Futures of submitted task runs (``prefect.futures`` in Prefect)."""

from headwater.engine.futures import (
    DoneAndNotDoneFutures,
    HeadwaterFuture,
    HeadwaterFutureList,
    PrefectFuture,
    PrefectFutureList,
    as_completed,
    resolve_futures_to_states,
    wait,
)

__all__ = [
    "DoneAndNotDoneFutures",
    "HeadwaterFuture",
    "HeadwaterFutureList",
    "PrefectFuture",
    "PrefectFutureList",
    "as_completed",
    "resolve_futures_to_states",
    "wait",
]
