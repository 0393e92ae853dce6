"""Concurrency limits: named pools of slots shared by every process on the machine.

Use them through Prefect's import paths, :mod:`headwater.concurrency.sync` and
:mod:`headwater.concurrency.asyncio` (``concurrency`` and ``rate_limit``); manage them
here or with ``headwater concurrency-limit``. A limit named ``tag:<tag>`` limits the task
runs carrying that tag: each takes one slot before it enters Running.

The names below load on first use: the task engine imports this package on every
``import headwater``, and most programs never touch a limit.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater.concurrency.acquire import ConcurrencyLeaseHolder
    from headwater.concurrency.limits import (
        ConcurrencyLimitDetail,
        acreate_concurrency_limit,
        adelete_concurrency_limit,
        aread_concurrency_limit,
        areset_concurrency_limit,
        create_concurrency_limit,
        delete_concurrency_limit,
        read_concurrency_limit,
        read_concurrency_limits,
        reset_concurrency_limit,
        tag_limit_name,
        update_concurrency_limit,
    )
    from headwater.concurrency.store import ConcurrencyLease, ConcurrencyLimit

__all__ = [
    "ConcurrencyLimit",
    "ConcurrencyLimitDetail",
    "ConcurrencyLease",
    "ConcurrencyLeaseHolder",
    "create_concurrency_limit",
    "read_concurrency_limit",
    "read_concurrency_limits",
    "update_concurrency_limit",
    "reset_concurrency_limit",
    "delete_concurrency_limit",
    "tag_limit_name",
    "acreate_concurrency_limit",
    "aread_concurrency_limit",
    "areset_concurrency_limit",
    "adelete_concurrency_limit",
]

_HOMES = {
    "ConcurrencyLeaseHolder": "headwater.concurrency.acquire",
    "ConcurrencyLease": "headwater.concurrency.store",
    "ConcurrencyLimit": "headwater.concurrency.store",
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES.get(name, "headwater.concurrency.limits")), name)
    globals()[name] = value
    return value
