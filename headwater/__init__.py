"""headwater: workflow orchestration for Python, asyncio-native and event-driven.

The public API follows Prefect 3's: ``from headwater import flow, task``.
"""

from headwater.concurrency.task_slots import acquire_task_slots
from headwater.engine.annotations import allow_failure, opaque, quote, unmapped
from headwater.engine.context import related_resources, tags
from headwater.engine.control import terminate_live_runs
from headwater.engine.flows import Flow, flow
from headwater.engine.logging import get_run_logger
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


# The engine knows nothing of storage, services or concurrency limits, and events/ nothing
# of the engine: wire them here.
register_related_provider(related_resources)
register_startup_hook(_start_services)
register_emit_hook(_start_for_event)  # a script's own events are kept and seen by automations
set_task_slot_provider(acquire_task_slots)
register_termination_hook(terminate_live_runs)  # SIGTERM: live runs end Crashed, then exit
del acquire_task_slots, related_resources, register_related_provider, register_startup_hook
del register_emit_hook, register_termination_hook, set_task_slot_provider, terminate_live_runs

__version__ = "0.1.0"

__all__ = [
    "Flow",
    "State",
    "Task",
    "allow_failure",
    "emit_event",
    "flow",
    "get_run_logger",
    "opaque",
    "quote",
    "tags",
    "task",
    "unmapped",
]
