"""Persisted results: records in result storage, readable from any process by key or run id.

A record is one file (or object): a line of JSON metadata (:class:`ResultRecordMetadata`:
storage key, serializer, expiration, creation time, run id), a newline, then the serialized
value. One file, written atomically, so metadata and value can never disagree, and the
metadata can be read without knowing how the value was serialized.

A :class:`ResultStore` pairs a storage with a serializer and a lock manager; caching and
transactions keep their records in one. A run whose result is persisted but not kept in
memory (``cache_result_in_memory=False``) holds a :class:`PersistedResult` in its state's
``data``: ``State.result()`` loads the value from storage on demand.
"""

from __future__ import annotations

import datetime
import time
import uuid
from typing import Any

import msgspec

from headwater.engine.result_storage import ResultStorage, resolve_storage
from headwater.engine.serializers import (
    Serializer,
    dump_or_raise,
    load_or_raise,
    resolve_serializer,
)
from headwater.exceptions import ResultNotFound, SerializationError

__all__ = [
    "PersistedResult",
    "ResultRecord",
    "ResultRecordMetadata",
    "ResultStore",
    "get_default_persist_setting",
    "get_default_result_serializer",
    "get_default_result_storage",
    "read_result",
]

READ_RETRIES = 10
READ_RETRY_DELAY = 0.25


class ResultRecordMetadata(msgspec.Struct, frozen=True, kw_only=True):
    """What a record says about its value: the first line of every record.

    Attributes:
        storage_key: the key it is stored under (the cache key, when there is one).
        serializer: the serializer's type name (``"pickle"``, ``"json"``...).
        storage: where it is stored (a directory or URL).
        expiration: when a cache hit on it stops counting (UTC); None is never.
        created: when it was written (UTC).
        run_id: the run that produced the value.
    """

    storage_key: str
    serializer: str
    storage: str
    created: datetime.datetime
    expiration: datetime.datetime | None = None
    run_id: str | None = None

    def is_expired(self, now: datetime.datetime | None = None) -> bool:
        if self.expiration is None:
            return False
        return (now or _utcnow()) >= self.expiration


class ResultRecord(msgspec.Struct, kw_only=True):
    """A record read back: its metadata and the deserialized value."""

    metadata: ResultRecordMetadata
    result: Any


_encode_metadata = msgspec.json.Encoder().encode
_decode_metadata = msgspec.json.Decoder(ResultRecordMetadata).decode


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class ResultStore:
    """Reads and writes result records: a storage, a serializer and a lock manager.

    Args:
        result_storage: a directory, an fsspec URL, or a LocalFileSystem/RemoteFileSystem;
            None is ``HEADWATER_RESULTS_DEFAULT_STORAGE`` or ``<HEADWATER_HOME>/storage``.
        serializer: a name (``"pickle"``, ``"json"``...) or a Serializer; None is
            ``HEADWATER_RESULTS_DEFAULT_SERIALIZER``.
        lock_manager: for SERIALIZABLE transactions; None is a file lock manager beside the
            storage (or under ``<HEADWATER_HOME>/storage`` for remote storage).
    """

    def __init__(
        self,
        result_storage: Any = None,
        serializer: Serializer | str | None = None,
        lock_manager: Any = None,
    ) -> None:
        self.result_storage: ResultStorage = resolve_storage(result_storage)
        self.serializer: Serializer = resolve_serializer(
            serializer if serializer is not None else get_default_result_serializer()
        )
        self._lock_manager = lock_manager

    @property
    def lock_manager(self) -> Any:
        if self._lock_manager is None:
            self._lock_manager = self.result_storage.lock_manager()
        return self._lock_manager

    @property
    def blocking(self) -> bool:
        """True when reads and writes do network I/O (async callers use a worker thread)."""
        return self.result_storage.blocking

    # -- records --------------------------------------------------------------------------------
    def write(
        self,
        key: str,
        obj: Any,
        expiration: datetime.datetime | None = None,
        run_id: uuid.UUID | str | None = None,
    ) -> ResultRecordMetadata:
        """Persist ``obj`` under ``key``, replacing any record; link ``run_id`` to it.

        Raises:
            SerializationError: the serializer cannot handle ``obj``; nothing is written.
        """
        run_text = None if run_id is None else str(run_id)
        metadata = ResultRecordMetadata(
            storage_key=key,
            serializer=self.serializer.type,
            storage=self.result_storage.location,
            created=_utcnow(),
            expiration=expiration,
            run_id=run_text,
        )
        header = _encode_metadata(metadata) + b"\n"
        serializer = self.serializer

        def body(file: Any) -> None:
            file.write(header)
            dump_or_raise(serializer, obj, file)

        self.result_storage.write(key, body)
        if run_text is not None and run_text != key:
            self.result_storage.link_run(run_text, key)
        return metadata

    def read(self, key: str) -> ResultRecord:
        """The record under ``key`` (expired or not).

        Raises:
            ResultNotFound: there is none.
            SerializationError: it cannot be decoded.
        """
        record = self._read(key, load=True)
        if record is None:
            raise ResultNotFound(key, self.result_storage.location)
        return record

    def read_valid(self, key: str, load: bool = True) -> ResultRecord | None:
        """The record under ``key`` if there is one that has not expired; else None.

        With ``load=False`` the value is not deserialized (``result`` is None).
        """
        record = self._read(key, load=load)
        if record is None or record.metadata.is_expired():
            return None
        return record

    def exists(self, key: str) -> bool:
        """True when a record that has not expired is stored under ``key``."""
        return self.read_valid(key, load=False) is not None

    def read_reference(self, reference: str) -> ResultRecord:
        """The record of a run id (through the run index) or else of a storage key."""
        key = self.result_storage.run_key(reference) if _is_uuid(reference) else None
        return self.read(key or reference)

    def _read(self, key: str, load: bool) -> ResultRecord | None:
        data = self.result_storage.read(key)
        if data is None:
            return None
        where = f"{key!r} in {self.result_storage.location}"
        newline = data.find(b"\n")
        try:
            metadata = _decode_metadata(data[:newline] if newline >= 0 else data)
        except msgspec.DecodeError as exc:
            raise SerializationError(f"{where} is not a headwater result record: {exc}") from None
        value = None
        if load:
            serializer = self.serializer
            if metadata.serializer != serializer.type:
                serializer = resolve_serializer(metadata.serializer)
            value = load_or_raise(serializer, data[newline + 1 :], where)
        return ResultRecord(metadata=metadata, result=value)

    # -- locks (Prefect's ResultStore lock API) --------------------------------------------------
    def supports_isolation_level(self, level: Any) -> bool:
        return True  # every store has a lock manager for SERIALIZABLE

    def acquire_lock(self, key: str, holder: str, timeout: float | None = None) -> bool:
        return bool(self.lock_manager.acquire_lock(key, holder, acquire_timeout=timeout))

    def release_lock(self, key: str, holder: str) -> None:
        self.lock_manager.release_lock(key, holder)

    def is_locked(self, key: str) -> bool:
        return bool(self.lock_manager.is_locked(key))

    def is_lock_holder(self, key: str, holder: str) -> bool:
        return bool(self.lock_manager.is_lock_holder(key, holder))

    def __repr__(self) -> str:
        return f"ResultStore({self.result_storage!r}, serializer={self.serializer.type!r})"


class PersistedResult:
    """A persisted value not kept in memory: what ``State.data`` holds for such a run."""

    __slots__ = ("metadata", "store")

    def __init__(self, metadata: ResultRecordMetadata, store: ResultStore) -> None:
        self.metadata = metadata
        self.store = store

    def get(self, retry: bool = True) -> Any:
        """Load the value; with ``retry``, up to 10 attempts 0.25 s apart (Prefect's rule)."""
        attempts = READ_RETRIES if retry else 1
        for attempt in range(attempts):
            try:
                return self.store.read(self.metadata.storage_key).result
            except (ResultNotFound, OSError):
                if attempt == attempts - 1:
                    raise
                time.sleep(READ_RETRY_DELAY)
        raise AssertionError("unreachable")  # pragma: no cover

    async def aget(self, retry: bool = True) -> Any:
        import anyio.to_thread

        return await anyio.to_thread.run_sync(self.get, retry)

    def __repr__(self) -> str:
        return f"PersistedResult({self.metadata.storage_key!r}, {self.store.result_storage!r})"


_default_store: tuple[Any, ResultStore] | None = None


def default_result_store() -> ResultStore:
    """The store of the default storage and serializer, made once per settings object."""
    global _default_store
    from headwater.settings import get_settings

    settings = get_settings()
    cached = _default_store
    if cached is None or cached[0] is not settings:
        cached = _default_store = (settings, ResultStore())
    return cached[1]


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def get_default_persist_setting() -> bool:
    """``HEADWATER_RESULTS_PERSIST_BY_DEFAULT``."""
    from headwater.settings import get_settings

    return get_settings().results_persist_by_default


def get_default_result_serializer() -> str:
    """``HEADWATER_RESULTS_DEFAULT_SERIALIZER`` (``"pickle"`` unless set)."""
    from headwater.settings import get_settings

    return get_settings().results_default_serializer


def get_default_result_storage() -> ResultStorage:
    """``HEADWATER_RESULTS_DEFAULT_STORAGE``, else the directory ``<HEADWATER_HOME>/storage``."""
    return resolve_storage(None)


def read_result(reference: uuid.UUID | str, result_storage: Any = None) -> Any:
    """The persisted result of a run (by its id) or under a storage key, from any process.

    Args:
        reference: a flow/task run id, or a storage key (a cache key, a result_storage_key).
        result_storage: where the run persisted it, when not in the default storage.

    Raises:
        ResultNotFound: nothing is stored under that run id or key.
        SerializationError: the record cannot be decoded.
    """
    return ResultStore(result_storage).read_reference(str(reference)).result
