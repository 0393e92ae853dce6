"""headwater: workflow orchestration for Python, asyncio-native and event-driven.

The public API follows Prefect 3's: ``from headwater import flow, task``.
"""

from headwater.engine.annotations import allow_failure, opaque, quote, unmapped
from headwater.engine.context import related_resources, tags
from headwater.engine.flows import Flow, flow
from headwater.engine.logging import get_run_logger
from headwater.engine.states import State
from headwater.engine.tasks import Task, task
from headwater.events.emit import emit_event, register_related_provider

# events emitted inside a run are related to it; events/ cannot import the engine itself
register_related_provider(related_resources)
del related_resources, register_related_provider

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
