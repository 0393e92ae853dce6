"""headwater: workflow orchestration for Python, asyncio-native and event-driven.

The public API follows Prefect 3's: ``from headwater import flow, task``.
"""

from headwater.concurrency.task_slots import acquire_task_slots
from headwater.engine import dispatch as _dispatch  # noqa: F401  (State.result's async rule)
from headwater.engine.annotations import allow_failure, opaque, quote, unmapped
from headwater.engine.context import related_resources, tags
from headwater.engine.control import terminate_live_runs
from headwater.engine.flows import Flow, flow
from headwater.engine.logging import get_run_logger
from headwater.engine.serving import install as install_serving
from headwater.engine.startup import register_startup_hook
from headwater.engine.states import State
from headwater.engine.task_slots import set_provider as set_task_slot_provider
from headwater.engine.tasks import Task, task
from headwater.events.emit import emit_event, register_emit_hook, register_related_provider
from headwater.lifecycle import register_termination_hook


def _start_services(automations: bool = True) -> None:
    # Imported on first run, not at import: a plain `import headwater` opens no database.
    # Events go to the server (or its outbox) when one is configured, else to the local
    # database; the reactor runs where the events are stored. Stop order is the specs' own.
    from headwater.automations.service import ensure_reactor
    from headwater.client.service import ensure_forwarder
    from headwater.settings import get_settings
    from headwater.storage.persistence import ensure_persistence

    if get_settings().api_url:
        ensure_forwarder()
    else:
        ensure_persistence()
        if automations:
            ensure_reactor()


def _start_for_event(event: str) -> None:
    # An automation's own created/updated/deleted events are kept, but start no reactor:
    # storing an automation (the CLI, a setup script) is not a reason to evaluate them here.
    _start_services(automations=not event.startswith("headwater.automation."))


def _to_deployment(flow: Flow[..., object], name: str | None = None, **options: object) -> object:
    from headwater.runner.deployment import to_deployment

    return to_deployment(flow, name, **options)  # type: ignore[arg-type]


def serve(*deployments: object, **options: object) -> None:
    """Serve deployments made with ``flow.to_deployment(...)`` from this process (Prefect's
    ``serve``): their schedules run here, and runs requested elsewhere start here."""
    from headwater.runner.service import serve as serve_deployments

    serve_deployments(*deployments, **options)  # type: ignore[arg-type]


async def aserve(*deployments: object, **options: object) -> None:
    """:func:`serve` for async code."""
    from headwater.runner.service import aserve as aserve_deployments

    await aserve_deployments(*deployments, **options)  # type: ignore[arg-type]


# The engine knows nothing of storage, services or concurrency limits, and events/ nothing
# of the engine: wire them here.
register_related_provider(related_resources)
register_startup_hook(_start_services)
register_emit_hook(_start_for_event)  # a script's own events are kept and seen by automations
set_task_slot_provider(acquire_task_slots)
register_termination_hook(terminate_live_runs)  # SIGTERM: live runs end Crashed, then exit
install_serving(to_deployment=_to_deployment, serve=serve, aserve=aserve)
del acquire_task_slots, related_resources, register_related_provider, register_startup_hook
del register_emit_hook, register_termination_hook, set_task_slot_provider, terminate_live_runs
del install_serving

__version__ = "0.1.0"

__all__ = [
    "Flow",
    "State",
    "Task",
    "allow_failure",
    "aserve",
    "emit_event",
    "flow",
    "get_run_logger",
    "opaque",
    "quote",
    "serve",
    "tags",
    "task",
    "unmapped",
]
