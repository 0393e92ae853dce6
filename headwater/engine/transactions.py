"""Transactions: group work so that it commits together or rolls back together (Prefect 3).

``with transaction(key=...) as txn:`` opens one; every task run inside gets a transaction of
its own, nested in it. States: PENDING → ACTIVE → STAGED → COMMITTED | ROLLED_BACK.

- On entry, a record already stored under ``key`` (and ``overwrite`` False) makes the
  transaction COMMITTED at once: that is how a cache hit works.
- Commit mode, inherited from the parent (top level: LAZY). EAGER commits when its block
  exits; LAZY leaves the commit to the outermost transaction; OFF rolls back at the end.
- Commit: children first, then on_commit hooks, then the staged value is written under
  ``key``. Rollback: on_rollback hooks in reverse order, then the children in reverse order.
  An exception in the block rolls back and propagates; a child that rolls back rolls back
  its parent.
- SERIALIZABLE takes the key's lock on entry (threads, coroutines and processes wait for
  it; see :mod:`headwater.engine.locking`) and gives it back on commit or rollback.

Use ``async with`` in async code: locks are then awaited, async hooks awaited, and remote
storage runs in a worker thread, so the event loop is never blocked. Unlike Prefect, a
failing rollback hook does not stop the others: each failure is logged and rollback goes on.
"""

from __future__ import annotations

import contextvars
import copy
import enum
import logging
import uuid
from typing import Any

from headwater.engine.asyncutils import call_maybe_async, call_maybe_async_sync
from headwater.engine.locking import aacquire_or_raise, acquire_or_raise
from headwater.engine.results import (
    ResultRecord,
    ResultRecordMetadata,
    ResultStore,
    default_result_store,
)
from headwater.exceptions import SerializationError

__all__ = [
    "CommitMode",
    "IsolationLevel",
    "Transaction",
    "TransactionState",
    "get_transaction",
    "transaction",
]

_logger = logging.getLogger("headwater.transactions")
_MISSING: Any = object()


class IsolationLevel(str, enum.Enum):
    READ_COMMITTED = "READ_COMMITTED"
    SERIALIZABLE = "SERIALIZABLE"


class CommitMode(str, enum.Enum):
    EAGER = "EAGER"
    LAZY = "LAZY"
    OFF = "OFF"


class TransactionState(str, enum.Enum):
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    STAGED = "STAGED"
    COMMITTED = "COMMITTED"
    ROLLED_BACK = "ROLLED_BACK"


current_transaction: contextvars.ContextVar[Transaction | None] = contextvars.ContextVar(
    "headwater_transaction", default=None
)


class PendingWrite:
    """A value staged under its own storage key (a task run's result)."""

    __slots__ = ("metadata", "value")

    def __init__(self, metadata: ResultRecordMetadata, value: Any) -> None:
        self.metadata = metadata
        self.value = value


class Transaction:
    """One transaction; see the module docstring. Build it with :func:`transaction`."""

    def __init__(
        self,
        key: str | None = None,
        store: ResultStore | None = None,
        commit_mode: CommitMode | None = None,
        isolation_level: IsolationLevel | None = None,
        overwrite: bool = False,
        write_on_commit: bool = True,
        logger: Any = None,
        lock_timeout: float | None = None,
    ) -> None:
        self.key = key
        self.store = store
        self.commit_mode = CommitMode(commit_mode) if commit_mode is not None else None
        self.isolation_level = (
            IsolationLevel(isolation_level) if isolation_level is not None else None
        )
        self.overwrite = overwrite
        self.write_on_commit = write_on_commit
        self.logger = logger or _logger
        self.lock_timeout = lock_timeout
        self.state = TransactionState.PENDING
        self.children: list[Transaction] = []
        self.on_commit_hooks: list[Any] = []
        self.on_rollback_hooks: list[Any] = []
        self.record: ResultRecord | None = None
        self._stored_values: dict[str, Any] = {}
        self._staged_value: Any = None
        self._parent: Transaction | None = None
        self._token: contextvars.Token[Transaction | None] | None = None
        self._holder = ""  # named when a lock is taken: only SERIALIZABLE runs need one
        self._locked = False
        self._load = True

    # -- values ---------------------------------------------------------------------------------
    def set(self, name: str, value: Any) -> None:
        """Keep ``value`` under ``name`` for code (and nested transactions) inside this one."""
        self._stored_values[name] = value

    def get(self, name: str, default: Any = _MISSING) -> Any:
        """A deep copy of the value set under ``name`` here or in a parent transaction.

        Raises:
            ValueError: no such name and no default.
        """
        if name in self._stored_values:
            return copy.deepcopy(self._stored_values[name])
        if self._parent is not None:
            return self._parent.get(name, default)
        if default is not _MISSING:
            return default
        raise ValueError(f"Could not retrieve value for unknown key: {name}")

    def is_committed(self) -> bool:
        return self.state is TransactionState.COMMITTED

    def is_rolled_back(self) -> bool:
        return self.state is TransactionState.ROLLED_BACK

    def is_staged(self) -> bool:
        return self.state is TransactionState.STAGED

    def is_pending(self) -> bool:
        return self.state is TransactionState.PENDING

    def is_active(self) -> bool:
        return self.state is TransactionState.ACTIVE

    def get_parent(self) -> Transaction | None:
        return self._parent

    def add_child(self, child: Transaction) -> None:
        self.children.append(child)

    # -- entering -------------------------------------------------------------------------------
    def _prepare(self) -> bool:
        """Inherit modes from the parent; True when the store must be consulted."""
        if self._token is not None:
            raise RuntimeError("this transaction is already open; open a new one instead")
        parent = self._parent = current_transaction.get()
        if self.commit_mode is None:
            self.commit_mode = parent.commit_mode if parent is not None else CommitMode.LAZY
        if self.isolation_level is None:
            self.isolation_level = (
                parent.isolation_level if parent is not None else IsolationLevel.READ_COMMITTED
            )
        if self.key and self.store is None:
            self.store = default_store()
        self.state = TransactionState.ACTIVE
        return bool(self.key and self.store is not None)

    def _serializable(self) -> bool:
        return self.isolation_level is IsolationLevel.SERIALIZABLE and bool(self.key)

    def _lookup(self) -> None:
        if self.overwrite:
            return
        assert self.store is not None and self.key
        try:
            record = self.store.read_valid(self.key, load=self._load)
        except SerializationError as exc:
            # e.g. pickled by other library versions: recompute and overwrite, do not crash
            self.logger.warning("Ignoring the record of transaction %r: %s", self.key, exc)
            return
        except BaseException:
            self._release()  # storage unreachable: do not keep the key locked
            raise
        if record is not None:
            self.record = record
            self.state = TransactionState.COMMITTED

    def begin(self) -> None:
        """Take the lock (SERIALIZABLE) and look for an existing record."""
        if self._prepare():
            assert self.store is not None and self.key
            if self._serializable():
                self._holder = uuid.uuid4().hex
                acquire_or_raise(self.store.lock_manager, self.key, self._holder, self.lock_timeout)
                self._locked = True
            self._lookup()
        self._token = current_transaction.set(self)

    async def abegin(self) -> None:
        """:meth:`begin` without blocking the event loop."""
        if self._prepare():
            assert self.store is not None and self.key
            if self._serializable():
                self._holder = uuid.uuid4().hex
                manager = self.store.lock_manager
                await aacquire_or_raise(manager, self.key, self._holder, self.lock_timeout)
                self._locked = True
            if self.store.blocking:
                import anyio.to_thread

                await anyio.to_thread.run_sync(self._lookup)
            else:
                self._lookup()
        self._token = current_transaction.set(self)

    def __enter__(self) -> Transaction:
        self.begin()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(failed=exc_type is not None)

    async def __aenter__(self) -> Transaction:
        await self.abegin()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        await self.aclose(failed=exc_type is not None)

    # -- leaving --------------------------------------------------------------------------------
    def close(self, failed: bool) -> None:
        """Leave the transaction: roll back on failure, else commit or defer per commit mode."""
        if self._token is None:
            raise RuntimeError("this transaction was never opened")
        if failed:
            self.rollback()
        else:
            if self.commit_mode is CommitMode.EAGER:
                self.commit()
            if self._parent is None:
                if self.commit_mode is CommitMode.OFF:
                    self.rollback()
                elif self.commit_mode is CommitMode.LAZY:
                    self.commit()
        parent = self._reset()
        if parent is not None and self.state is TransactionState.ROLLED_BACK:
            parent.rollback()

    async def aclose(self, failed: bool) -> None:
        if self._token is None:
            raise RuntimeError("this transaction was never opened")
        if failed:
            await self.arollback()
        else:
            if self.commit_mode is CommitMode.EAGER:
                await self.acommit()
            if self._parent is None:
                if self.commit_mode is CommitMode.OFF:
                    await self.arollback()
                elif self.commit_mode is CommitMode.LAZY:
                    await self.acommit()
        parent = self._reset()
        if parent is not None and self.state is TransactionState.ROLLED_BACK:
            await parent.arollback()

    def _reset(self) -> Transaction | None:
        parent = self._parent
        if parent is not None:
            parent.add_child(self)  # the parent takes responsibility for committing
        if self._token is not None:
            current_transaction.reset(self._token)
            self._token = None
        return parent

    # -- staging, committing, rolling back ------------------------------------------------------
    def stage(
        self,
        value: Any,
        on_rollback_hooks: list[Any] | None = None,
        on_commit_hooks: list[Any] | None = None,
    ) -> None:
        """Keep ``value`` to be written at commit, with hooks to run then (or on rollback)."""
        if self.state is not TransactionState.COMMITTED:
            self._staged_value = value
            self.on_rollback_hooks += on_rollback_hooks or []
            self.on_commit_hooks += on_commit_hooks or []
            self.state = TransactionState.STAGED

    def read(self) -> ResultRecord | None:
        """The record this transaction found on entry (or reads now), if any."""
        if self.record is None and self.store is not None and self.key:
            self.record = self.store.read_valid(self.key)
        return self.record

    def _finished(self) -> bool:
        return self.state in (TransactionState.COMMITTED, TransactionState.ROLLED_BACK)

    def _write(self) -> None:
        store, staged = self.store, self._staged_value
        if store is None or not self.write_on_commit:
            return
        if isinstance(staged, PendingWrite):
            meta = staged.metadata
            store.write(meta.storage_key, staged.value, meta.expiration, meta.run_id)
        elif self.key:
            store.write(self.key, staged)

    def _commit_failed(self, exc: Exception) -> None:
        if isinstance(exc, SerializationError):
            self.logger.warning(
                "Could not serialize the result of transaction %r; execution continues, but "
                "the transaction is not committed: %s",
                self.key,
                exc,
            )
        else:
            self.logger.exception(
                "An error was encountered while committing transaction %r", self.key
            )

    def commit(self) -> bool:
        """Commit children, run on_commit hooks, write the staged value. False if it did not."""
        if self._finished():
            self._release()
            return False
        try:
            for child in self.children:
                child.commit()
            for hook in self.on_commit_hooks:
                self._run_hook_sync(hook, "commit", raise_errors=True)
            self._write()
        except Exception as exc:
            self._commit_failed(exc)
            self.rollback()
            return False
        self.state = TransactionState.COMMITTED
        self._release()
        return True

    async def acommit(self) -> bool:
        if self._finished():
            self._release()
            return False
        try:
            for child in self.children:
                await child.acommit()
            for hook in self.on_commit_hooks:
                await self._run_hook_async(hook, "commit", raise_errors=True)
            if self.store is not None and self.store.blocking:
                import anyio.to_thread

                await anyio.to_thread.run_sync(self._write)
            else:
                self._write()
        except Exception as exc:
            self._commit_failed(exc)
            await self.arollback()
            return False
        self.state = TransactionState.COMMITTED
        self._release()
        return True

    def rollback(self) -> bool:
        """Run on_rollback hooks (reverse order), then roll back children (reverse order)."""
        if self._finished():
            self._release()
            return False
        try:
            for hook in reversed(self.on_rollback_hooks):
                self._run_hook_sync(hook, "rollback", raise_errors=False)
            self.state = TransactionState.ROLLED_BACK
            for child in reversed(self.children):
                child.rollback()
        finally:
            self._release()
        return True

    async def arollback(self) -> bool:
        if self._finished():
            self._release()
            return False
        try:
            for hook in reversed(self.on_rollback_hooks):
                await self._run_hook_async(hook, "rollback", raise_errors=False)
            self.state = TransactionState.ROLLED_BACK
            for child in reversed(self.children):
                await child.arollback()
        finally:
            self._release()
        return True

    def _release(self) -> None:
        if self._locked:
            self._locked = False
            assert self.store is not None and self.key
            self.store.release_lock(self.key, self._holder)

    def _run_hook_sync(self, hook: Any, kind: str, raise_errors: bool) -> None:
        name = self._hook_started(hook, kind)
        try:
            call_maybe_async_sync(hook, self)
        except Exception:
            self._hook_failed(name, kind, raise_errors)
            if raise_errors:
                raise
        else:
            self._hook_finished(hook, name, kind)

    async def _run_hook_async(self, hook: Any, kind: str, raise_errors: bool) -> None:
        name = self._hook_started(hook, kind)
        try:
            await call_maybe_async(hook, self)
        except Exception:
            self._hook_failed(name, kind, raise_errors)
            if raise_errors:
                raise
        else:
            self._hook_finished(hook, name, kind)

    def _hook_started(self, hook: Any, kind: str) -> str:
        name = getattr(hook, "__qualname__", None) or getattr(hook, "__name__", repr(hook))
        if getattr(hook, "log_on_run", True):
            self.logger.info("Running %s hook %r", kind, name)
        return str(name)

    def _hook_finished(self, hook: Any, name: str, kind: str) -> None:
        if getattr(hook, "log_on_run", True):
            self.logger.info("%s hook %r finished running successfully", kind.capitalize(), name)

    def _hook_failed(self, name: str, kind: str, raise_errors: bool) -> None:
        # a failing commit hook fails the commit (logged there); a rollback hook's is logged
        log = self.logger.error if raise_errors else self.logger.exception
        log("An error was encountered while running %s hook %r", kind, name)

    def __repr__(self) -> str:
        return f"Transaction(key={self.key!r}, state={self.state.value})"


def default_store() -> ResultStore:
    """The store of the current flow run (its result_storage/serializer), else the default."""
    from headwater.engine.context import flow_run_context

    flow_ctx = flow_run_context.get()
    store = getattr(flow_ctx, "result_store", None)
    return store if store is not None else default_result_store()


def get_transaction() -> Transaction | None:
    """The innermost open transaction, or None."""
    return current_transaction.get()


def transaction(
    key: str | None = None,
    store: ResultStore | None = None,
    commit_mode: CommitMode | None = None,
    isolation_level: IsolationLevel | None = None,
    overwrite: bool = False,
    write_on_commit: bool = True,
    logger: Any = None,
    lock_timeout: float | None = None,
) -> Transaction:
    """Open a transaction: ``with transaction(key="load-2024") as txn:`` (or ``async with``).

    Args:
        key: the record's key; when one is already stored, the transaction starts
            COMMITTED (check ``txn.is_committed()`` to skip work done before).
        store: where the record goes (default: the flow run's result store or the default).
        commit_mode: EAGER, LAZY or OFF (default: the parent's, else LAZY).
        isolation_level: READ_COMMITTED or SERIALIZABLE (default: the parent's, else
            READ_COMMITTED). SERIALIZABLE with a key waits for the key's lock.
        overwrite: ignore an existing record and write a new one.
        write_on_commit: write the staged value on commit.
        logger: where hook activity is logged.
        lock_timeout: seconds to wait for a SERIALIZABLE lock; LockTimeout after.
    """
    if logger is None:
        from headwater.engine.logging import get_run_logger
        from headwater.exceptions import MissingContextError

        try:
            logger = get_run_logger()
        except MissingContextError:
            logger = _logger
    return Transaction(
        key=key,
        store=store,
        commit_mode=commit_mode,
        isolation_level=isolation_level,
        overwrite=overwrite,
        write_on_commit=write_on_commit,
        logger=logger,
        lock_timeout=lock_timeout,
    )
