"""A task's caching and result options after Prefect's rules, fixed at decoration time.

Prefect's rules (``@task`` §2.1): caching options force ``persist_result``, a
``cache_key_fn`` overrides ``cache_policy``, ``result_storage_key`` *is* the key,
``persist_result=False`` disables caching. Pure option logic: nothing runs here.
"""

from __future__ import annotations

import datetime
import warnings
from typing import Any

from headwater.engine.cache_policies import DEFAULT, NO_CACHE, CacheKeyFnPolicy, CachePolicy
from headwater.engine.result_storage import resolve_storage
from headwater.engine.results import ResultStore, default_result_store
from headwater.engine.serializers import resolve_serializer
from headwater.exceptions import CachePolicyWarning
from headwater.settings import get_settings

__all__ = ["NOT_SET", "TaskResultOptions", "resolve_options"]

NOT_SET: Any = type("NotSet", (), {"__repr__": lambda self: "NotSet"})()


class TaskResultOptions:
    """A task's caching and result options after Prefect's rules (fixed at decoration)."""

    __slots__ = (
        "persist_result",
        "cache_policy",
        "result_storage_key",
        "result_storage",
        "result_serializer",
        "cache_expiration",
        "refresh_cache",
        "cache_result_in_memory",
        "_store",
    )

    def __init__(
        self,
        *,
        persist_result: bool | None,
        cache_policy: CachePolicy | None,
        result_storage_key: str | None,
        result_storage: Any,
        result_serializer: Any,
        cache_expiration: datetime.timedelta | None,
        refresh_cache: bool | None,
        cache_result_in_memory: bool,
    ) -> None:
        self.persist_result = persist_result
        self.cache_policy = cache_policy
        self.result_storage_key = result_storage_key
        self.result_storage = result_storage
        self.result_serializer = result_serializer
        self.cache_expiration = cache_expiration
        self.refresh_cache = refresh_cache
        self.cache_result_in_memory = cache_result_in_memory
        self._store: ResultStore | None = None

    def store(self, flow_store: ResultStore | None) -> ResultStore:
        """Where this task's records go: its own options, else the flow's, else the default."""
        policy = self.cache_policy
        key_storage = getattr(policy, "key_storage", None)
        lock_manager = getattr(policy, "lock_manager", None)
        own = (self.result_storage, self.result_serializer, key_storage, lock_manager)
        if own == (None, None, None, None):
            return flow_store if flow_store is not None else default_result_store()
        if self._store is None:
            self._store = ResultStore(
                key_storage if key_storage is not None else self.result_storage,
                self.result_serializer,
                lock_manager,
            )
        return self._store


def resolve_options(
    owner: str,
    *,
    cache_policy: Any,
    cache_key_fn: Any,
    persist_result: bool | None,
    result_storage: Any,
    result_serializer: Any,
    result_storage_key: str | None,
    cache_expiration: datetime.timedelta | None,
    refresh_cache: bool | None,
    cache_result_in_memory: bool,
) -> TaskResultOptions:
    """Apply Prefect's rules for a task's caching options (``@task`` §2.1).

    Raises:
        TypeError: a cache_policy that is not a CachePolicy, a cache_expiration that is not
            a timedelta.
    """
    if cache_policy is None:
        cache_policy = NO_CACHE
    if cache_policy is not NOT_SET and not isinstance(cache_policy, CachePolicy):
        raise TypeError(f"{owner}: cache_policy must be a CachePolicy, got {cache_policy!r}")
    if cache_expiration is not None and not isinstance(cache_expiration, datetime.timedelta):
        raise TypeError(f"{owner}: cache_expiration must be a datetime.timedelta")
    if result_serializer is not None:
        resolve_serializer(result_serializer)  # an unknown name fails here, not at run time
    if result_storage is not None:
        resolve_storage(result_storage)
    if cache_key_fn is not None:
        if cache_policy is not NOT_SET and cache_policy != NO_CACHE:
            warnings.warn(
                f"{owner} has both a cache_key_fn and a cache_policy; the cache_key_fn is used",
                CachePolicyWarning,
                stacklevel=4,
            )
        cache_policy = CacheKeyFnPolicy(cache_key_fn)
    elif cache_policy is NOT_SET and get_settings().tasks_default_no_cache:
        cache_policy = NO_CACHE
    caching = cache_policy is not NOT_SET and cache_policy != NO_CACHE
    if persist_result is None and (
        caching
        or result_storage_key is not None
        or result_storage is not None
        or result_serializer is not None
    ):
        persist_result = True
    if persist_result is False:
        if caching:
            warnings.warn(
                f"{owner}: the cache_policy is ignored because persist_result is False",
                CachePolicyWarning,
                stacklevel=4,
            )
        cache_policy = NO_CACHE
    elif cache_policy is NOT_SET:
        # Prefect's DEFAULT; it takes effect only when the result is persisted
        cache_policy = DEFAULT if result_storage_key is None else None
    elif result_storage_key is not None and cache_policy != NO_CACHE:
        cache_policy = None  # the storage key is the cache key
    return TaskResultOptions(
        persist_result=persist_result,
        cache_policy=cache_policy,
        result_storage_key=result_storage_key,
        result_storage=result_storage,
        result_serializer=result_serializer,
        cache_expiration=cache_expiration,
        refresh_cache=refresh_cache,
        cache_result_in_memory=cache_result_in_memory,
    )
