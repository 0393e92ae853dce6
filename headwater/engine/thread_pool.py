"""The thread pool sync task runs use: ``concurrent.futures``' contract, on daemon threads.

``ThreadPoolExecutor`` joins its threads at interpreter exit, so one sync task that never
returns keeps a process alive after its flow run was interrupted (Ctrl-C, SIGTERM) and
recorded Crashed. This pool's workers are daemon threads: :meth:`DaemonThreadPool.shutdown`
with ``wait=True`` (every normal flow end) still joins them all, so none is left behind, but
a task run abandoned past its grace does not hold the exit hostage.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["DaemonThreadPool"]

T = TypeVar("T")

_STOP = None  # the sentinel a worker exits on


class DaemonThreadPool:
    """At most ``max_workers`` daemon threads, started as work arrives and none is idle."""

    def __init__(self, max_workers: int, thread_name_prefix: str) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers
        self._prefix = thread_name_prefix
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._shutdown = False

    def submit(self, fn: Callable[..., T], /, *args: Any) -> concurrent.futures.Future[T]:
        """Run ``fn(*args)`` on a worker; returns its future.

        Raises:
            RuntimeError: the pool was shut down.
        """
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot submit to a thread pool that was shut down")
            self._work.put((future, fn, args))
            if not self._idle.acquire(blocking=False) and len(self._threads) < self.max_workers:
                thread = threading.Thread(
                    target=self._run,
                    name=f"{self._prefix}_{len(self._threads)}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)
        return future

    def _run(self) -> None:
        while True:
            item = self._work.get()
            if item is _STOP:
                return
            future, fn, args = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:
                    future.set_exception(exc)
                del future, fn, args, item  # hold no result while idle
            self._idle.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking work; with ``cancel_futures``, queued work never starts (its futures
        are cancelled); with ``wait``, return once every worker has ended."""
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                while True:
                    try:
                        item = self._work.get_nowait()
                    except queue.Empty:
                        break
                    if item is not _STOP:
                        item[0].cancel()
            for _ in self._threads:
                self._work.put(_STOP)
            threads = list(self._threads)
        if wait:
            for thread in threads:
                thread.join()
