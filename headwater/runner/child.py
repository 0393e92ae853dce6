"""The process that runs one claimed run of a deployment: ``python -m headwater.runner.child``.

The launcher starts it with the run's :class:`ChildOrder` as JSON in
``HEADWATER__CHILD_ORDER``. It loads the flow from the entrypoint and continues the claimed
run (same id, from its Pending state); its events reach the database through this
process's own persistence, flushed before it exits.

Cancellation: the launcher writes ``cancel <message>`` to this process's stdin, then sends
SIGTERM. The termination hook reads that line first (the bytes are already there), so the
run ends Cancelled and its ``on_cancellation`` hooks run; a SIGTERM without it (serve is
stopping, ``docker stop``) ends the run Crashed, as for any headwater process. Exit status:
0 when the run Completed, 1 when it ended otherwise, 143 on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import anyio
import msgspec

from headwater import lifecycle
from headwater.deployments.backend import get_backend
from headwater.engine import control
from headwater.engine.adoption import Adoption, deployment_context
from headwater.engine.flow_engine import FlowRunEngine
from headwater.engine.states import StateType
from headwater.events.bus import get_bus
from headwater.exceptions import DeploymentValidationError, ParameterTypeError
from headwater.runner.entrypoint import load_flow

__all__ = ["ORDER_VARIABLE", "ChildOrder", "main"]

ORDER_VARIABLE = "HEADWATER__CHILD_ORDER"

loading_entrypoint = False
"""True while this process imports a deployment's entrypoint: a ``serve()`` that the module
calls at import (no ``if __name__ == "__main__":`` guard) must not serve again here."""


class ChildOrder(msgspec.Struct, frozen=True, kw_only=True):
    """What the launched process needs: where the flow is, and the run to continue."""

    entrypoint: str
    path: str | None
    adoption: Adoption


def _cancel_hook(flow_run_id: Any) -> Any:
    def read_cancel() -> None:
        try:
            os.set_blocking(0, False)
            data = os.read(0, 65536)
        except (OSError, ValueError):
            return
        for line in data.decode(errors="replace").splitlines():
            if line.startswith("cancel"):
                message = line[len("cancel") :].strip() or "Cancelled on request"
                control.request_cancellation(flow_run_id, message)
            elif line.startswith("suspend"):
                # the run waits, Suspended, and starts anew when resumed: record nothing
                # more of this attempt, keep what was published, and leave at once
                get_bus().flush(timeout=5.0)
                os._exit(0)

    return read_cancel


def main() -> int:
    # The launcher starts this process from headwater's service thread, which blocks
    # SIGTERM and SIGINT (they are the main thread's); a signal mask survives exec.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    raw = os.environ.pop(ORDER_VARIABLE, None)
    if raw is None:
        print(f"{ORDER_VARIABLE} is not set: this is started by a launcher", file=sys.stderr)
        return 2
    order = msgspec.json.decode(raw, type=ChildOrder)
    adoption = order.adoption
    run_id = adoption.flow_run_id
    if order.path:
        try:
            os.chdir(order.path)
        except OSError as exc:
            get_backend().end_run(
                run_id, StateType.CRASHED, "Crashed", f"Cannot enter {order.path}: {exc}"
            )
            return 1
    lifecycle.register_termination_hook(_cancel_hook(run_id), first=True)
    global loading_entrypoint
    loading_entrypoint = True
    try:
        flow = load_flow(order.entrypoint, order.path)
    except DeploymentValidationError as exc:
        get_backend().end_run(
            run_id, StateType.CRASHED, "Crashed", f"Could not load the flow: {exc}"
        )
        return 1
    finally:
        loading_entrypoint = False
    deployment_context.set(adoption.deployment)
    try:
        engine = FlowRunEngine(flow, (), dict(adoption.parameters), adoption)
    except ParameterTypeError as exc:
        get_backend().end_run(
            run_id, StateType.FAILED, "Failed", f"Validation of flow parameters failed: {exc}"
        )
        return 1
    if flow.isasync:
        anyio.run(engine.execute_async)
    else:
        engine.execute_sync()
    state = engine.flow_run.state
    return 0 if state is not None and state.type is StateType.COMPLETED else 1


if __name__ == "__main__":
    # run as the importable module, not as __main__: its flag is the one serve() reads
    from headwater.runner.child import main as run_child

    sys.exit(run_child())
