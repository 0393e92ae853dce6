"""Control of live flow runs from outside their code: cancellation and termination.

The engine registers each flow run while its body runs in this process. A request to
cancel it (from an automation's cancel-flow-run action, or from user code) interrupts the
body: an async flow's cancel scope is cancelled on its own event loop; a sync flow's thread
gets an interrupt at its next Python bytecode (as timeouts do; a single long C call is not
interruptible). The run then goes Cancelling → Cancelled, and its ``on_cancellation``
hooks fire. The registry holds live runs only, never results.

Termination (SIGTERM, as ``docker stop``, systemd and Kubernetes send) is Prefect's rule:
the process's live flow runs, and their open task runs, end Crashed (Cancelled when their
cancellation was already requested) before it exits, with status 143.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

from headwater.engine.timeouts import interrupt_thread

__all__ = [
    "TERMINATED",
    "CancellationInterrupt",
    "LiveRun",
    "TerminationSignal",
    "live_flow_run_ids",
    "request_cancellation",
    "terminate_live_runs",
    "terminating",
]


class TerminationSignal(SystemExit):
    """Raised in a thread running a flow when the process is told to stop (SIGTERM).

    A SystemExit (status 128 + 15), so user code's ``except Exception`` does not swallow
    it, the engine records the runs it interrupts as Crashed, and the interpreter exits
    through its normal path (``atexit``: the run history is written) with that status.
    """

    def __init__(self, code: int = 143) -> None:
        super().__init__(code)


TERMINATED = "Execution was interrupted: the process was told to stop (SIGTERM)."

terminating = False
"""True once the process has been told to stop: interrupted runs say so when they crash."""


class CancellationInterrupt(BaseException):
    """Injected into a sync flow's thread when its run is cancelled.

    A BaseException, so that a user's ``except Exception`` does not swallow it.
    """


class LiveRun:
    """How to interrupt one running flow run; the engine fills it in."""

    __slots__ = ("flow_run_id", "message", "thread_id", "_cancel", "_lock")

    def __init__(self, flow_run_id: uuid.UUID) -> None:
        self.flow_run_id = flow_run_id
        self.thread_id: int | None = None  # the thread of a sync body, while it runs
        self.message: str | None = None
        self._cancel: Callable[[], object] | None = None
        self._lock = threading.Lock()

    def bind_thread(self, thread_id: int) -> None:
        """A sync body runs in ``thread_id``: cancel by interrupting that thread."""
        self.thread_id = thread_id
        self._set(lambda: interrupt_thread(thread_id, CancellationInterrupt))

    def bind_scope(self, cancel: Callable[[], object]) -> None:
        """An async body runs under a cancel scope: cancel by calling ``cancel``."""
        self._set(cancel)

    def unbind(self, withdraw: Callable[[], object] | None = None) -> bool:
        """Stop accepting interrupts; True if cancellation was requested while bound.

        ``withdraw`` runs under the same lock as the interrupt, so an interrupt that was
        queued but not yet delivered can be taken back before it strikes elsewhere.
        """
        with self._lock:
            self._cancel = None
            self.thread_id = None
            requested = self.message is not None
            if requested and withdraw is not None:
                withdraw()
        return requested

    def _set(self, cancel: Callable[[], object]) -> None:
        with self._lock:
            self._cancel = cancel
            if self.message is not None:
                cancel()

    def request(self, message: str) -> None:
        # the interrupt is sent under the lock so that unbind() can withdraw it reliably
        with self._lock:
            if self.message is None:
                self.message = message
            if self._cancel is not None:
                self._cancel()


_live: dict[uuid.UUID, LiveRun] = {}
_lock = threading.Lock()


def register(flow_run_id: uuid.UUID) -> LiveRun:
    live = LiveRun(flow_run_id)
    with _lock:
        _live[flow_run_id] = live
    return live


def unregister(flow_run_id: uuid.UUID) -> None:
    with _lock:
        _live.pop(flow_run_id, None)


def live_flow_run_ids() -> list[uuid.UUID]:
    """The flow runs currently running in this process."""
    with _lock:
        return list(_live)


def is_cancelling(flow_run_id: uuid.UUID) -> bool:
    """True when cancellation of this live flow run has been requested."""
    live = _live.get(flow_run_id)
    return live is not None and live.message is not None


def request_cancellation(flow_run_id: uuid.UUID, message: str = "Cancelled on request") -> bool:
    """Ask a flow run running in this process to stop.

    Returns:
        True when the run is live here and will move Cancelling → Cancelled; False when
        no such run is running in this process (it finished, or runs elsewhere).
    """
    with _lock:
        live = _live.get(flow_run_id)
    if live is None:
        return False
    live.request(message)
    return True


def terminate_live_runs() -> None:
    """Stop this process's live flow runs because the process must stop (SIGTERM).

    Called in the main thread by the SIGTERM handler. Sync flow bodies in other threads get
    :class:`TerminationSignal` at their next bytecode; when a run is live, the main thread
    gets it raised here, so a flow running there (or the event loop of an async one) ends
    its runs Crashed on the way out. Does nothing when no run is live.
    """
    global terminating
    with _lock:
        live = list(_live.values())
    if not live:
        return
    terminating = True
    main = threading.main_thread().ident
    for run in live:
        thread_id = run.thread_id
        if thread_id is not None and thread_id != main:
            interrupt_thread(thread_id, TerminationSignal)
    raise TerminationSignal()
