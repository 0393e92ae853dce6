"""Flows the deployment tests serve, deploy and run in subprocesses."""

from __future__ import annotations

import os
import time
from pathlib import Path

import headwater.runtime.deployment as current_deployment
from headwater import flow


@flow
def greet(name: str = "world", times: int = 1) -> str:
    """Say hello."""
    marker = os.environ.get("SERVED_MARKER_DIR")
    if marker:
        facts = f"{current_deployment.name}|{current_deployment.id}|{name}|{times}"
        (Path(marker) / f"{time.time_ns()}.{os.getpid()}").write_text(facts)
    return f"hello {name} x{times}"


def _note_cancelled(flow, flow_run, state) -> None:  # an on_cancellation hook
    marker = os.environ.get("SERVED_MARKER_DIR")
    if marker:
        (Path(marker) / f"cancelled.{os.getpid()}").write_text(state.message or "")


@flow(on_cancellation=[_note_cancelled])
def sleepy(seconds: float = 60.0) -> None:
    marker = os.environ.get("SERVED_MARKER_DIR")
    if marker:
        (Path(marker) / f"sleepy.{os.getpid()}").write_text(str(os.getpid()))
    time.sleep(seconds)


@flow
def broken() -> None:
    raise RuntimeError("broken on purpose")


@flow
def parent_calls_child() -> str:
    from headwater.deployments import run_deployment

    run = run_deployment("greet/child", parameters={"name": "from-parent"}, timeout=30)
    return run.state_name
