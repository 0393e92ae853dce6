"""Locks for SERIALIZABLE transactions: one holder per key, in this process and across processes.

Two layers. Inside a process, a table of held keys: threads wait on a condition, coroutines on
a future woken from whichever thread releases, so an async waiter never blocks its loop.
Across processes (:class:`FileSystemLockManager`), the in-process holder then takes an
advisory ``flock`` on ``<directory>/<key>.lock``; the operating system drops it if the holding
process dies, so a crash never leaves a key locked. Waiting for another process polls with a
short backoff (a blocking ``flock`` could not be given up on timeout or cancellation).

Lock files are never deleted: removing a lock file that another process has open would let
two processes lock two different files for the same key.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import anyio

from headwater.exceptions import LockTimeout

__all__ = ["FileSystemLockManager", "LockManager", "MemoryLockManager"]

_POLL_FIRST = 0.002
_POLL_MAX = 0.05


class MemoryLockManager:
    """Key locks for the threads and coroutines of one process."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._released = threading.Condition(self._mutex)
        self._holders: dict[str, str] = {}
        self._async_waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]]
        self._async_waiters = {}

    # -- public API (Prefect's LockManager protocol) --------------------------------------------
    def acquire_lock(self, key: str, holder: str, acquire_timeout: float | None = None) -> bool:
        """Wait until ``key`` is free and take it for ``holder``; False on timeout.

        Taking a key ``holder`` already holds succeeds at once.
        """
        deadline = None if acquire_timeout is None else time.monotonic() + acquire_timeout
        with self._mutex:
            while True:
                current = self._holders.get(key)
                if current is None or current == holder:
                    self._holders[key] = holder
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._released.wait(remaining)
        if not self._take_external(key, deadline):
            self._release_local(key, holder)
            return False
        return True

    async def aacquire_lock(
        self, key: str, holder: str, acquire_timeout: float | None = None
    ) -> bool:
        """:meth:`acquire_lock` for coroutines: waits without blocking the event loop."""
        try:
            with anyio.fail_after(acquire_timeout):
                while True:
                    with self._mutex:
                        current = self._holders.get(key)
                        if current is None or current == holder:
                            self._holders[key] = holder
                            break
                        loop = asyncio.get_running_loop()
                        future: asyncio.Future[None] = loop.create_future()
                        self._async_waiters.setdefault(key, []).append((loop, future))
                    await future
                try:
                    await self._atake_external(key)
                except BaseException:
                    self._release_local(key, holder)
                    raise
        except TimeoutError:
            return False
        return True

    def release_lock(self, key: str, holder: str) -> None:
        """Give ``key`` back.

        Raises:
            ValueError: ``holder`` does not hold ``key``.
        """
        if not self.is_lock_holder(key, holder):
            raise ValueError(f"cannot release lock {key!r}: it is not held by {holder!r}")
        self._release_external(key)
        self._release_local(key, holder)

    def is_locked(self, key: str) -> bool:
        with self._mutex:
            return key in self._holders

    def is_lock_holder(self, key: str, holder: str) -> bool:
        with self._mutex:
            return self._holders.get(key) == holder

    # -- the cross-process layer (none here) ----------------------------------------------------
    def _take_external(self, key: str, deadline: float | None) -> bool:
        return True

    async def _atake_external(self, key: str) -> None:
        return None

    def _release_external(self, key: str) -> None:
        return None

    def _release_local(self, key: str, holder: str) -> None:
        with self._mutex:
            if self._holders.get(key) == holder:
                del self._holders[key]
            self._released.notify_all()
            waiters = self._async_waiters.pop(key, [])
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_wake, future)
            except RuntimeError:
                pass  # that loop is closed: its waiter is gone


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class FileSystemLockManager(MemoryLockManager):
    """Key locks shared by every process on this machine, through lock files in a directory.

    Args:
        lock_files_directory: where the ``<key>.lock`` files live (created when needed).
    """

    def __init__(self, lock_files_directory: str | Path) -> None:
        super().__init__()
        self.lock_files_directory = Path(lock_files_directory).expanduser()
        self._files: dict[str, int] = {}

    def _path(self, key: str) -> Path:
        # keys may hold "/" or be long: hash them into one flat, safe file name
        digest = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
        return self.lock_files_directory / f"{digest}.lock"

    def _try_flock(self, key: str) -> bool:
        if key in self._files:
            return True
        self.lock_files_directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path(key), os.O_RDWR | os.O_CREAT, 0o644)
        if _try_lock_fd(fd):
            with self._mutex:
                self._files[key] = fd
            return True
        os.close(fd)
        return False

    def _take_external(self, key: str, deadline: float | None) -> bool:
        delay = _POLL_FIRST
        while not self._try_flock(key):
            if deadline is not None and time.monotonic() + delay > deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)
        return True

    async def _atake_external(self, key: str) -> None:
        delay = _POLL_FIRST
        while not self._try_flock(key):
            await anyio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)

    def _release_external(self, key: str) -> None:
        with self._mutex:
            fd = self._files.pop(key, None)
        if fd is not None:
            _unlock_fd(fd)
            os.close(fd)

    def __repr__(self) -> str:
        return f"FileSystemLockManager({str(self.lock_files_directory)!r})"


try:
    import fcntl

    def _try_lock_fd(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock_fd(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

except ImportError:  # pragma: no cover - Windows
    import msvcrt

    def _try_lock_fd(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True

    def _unlock_fd(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]


class LockManager(Protocol):
    """What a transaction needs from a lock manager (Prefect's ``LockManager`` protocol)."""

    def acquire_lock(self, key: str, holder: str, acquire_timeout: float | None = None) -> bool: ...

    def release_lock(self, key: str, holder: str) -> None: ...

    def is_locked(self, key: str) -> bool: ...

    def is_lock_holder(self, key: str, holder: str) -> bool: ...


def acquire_or_raise(manager: Any, key: str, holder: str, timeout: float | None) -> None:
    if not manager.acquire_lock(key, holder, acquire_timeout=timeout):
        raise LockTimeout(f"lock {key!r} was not acquired within {timeout} second(s)")


async def aacquire_or_raise(
    manager: Any, key: str, holder: str, acquire_timeout: float | None
) -> None:
    acquire = getattr(manager, "aacquire_lock", None)
    if acquire is None:  # a lock manager with only the sync API: wait in a worker thread
        got = await anyio.to_thread.run_sync(
            lambda: manager.acquire_lock(key, holder, acquire_timeout=acquire_timeout)
        )
    else:
        got = await acquire(key, holder, acquire_timeout=acquire_timeout)
    if not got:
        raise LockTimeout(f"lock {key!r} was not acquired within {acquire_timeout} second(s)")
