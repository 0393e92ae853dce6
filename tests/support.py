"""Helpers shared by the tests: an event log and transition assertions."""

from __future__ import annotations

from typing import Any

from headwater.events import Event

__all__ = ["EventLog", "assert_transitions"]


class EventLog(list[Event]):
    """Every event published while the fixture is active, in order."""

    def names(self, prefix: str = "") -> list[str]:
        return [event.event for event in self if event.event.startswith(prefix)]

    def for_resource(self, resource_id: str) -> list[Event]:
        return [event for event in self if event.resource_id == resource_id]

    def state_names(self, run_id: Any, kind: str = "flow-run") -> list[str]:
        """The state names a run went through, from its own events."""
        resource_id = f"headwater.{kind}.{run_id}"
        return [event.event.rsplit(".", 1)[1] for event in self.for_resource(resource_id)]


def assert_transitions(log: EventLog, run_id: Any, expected: list[str], kind: str = "flow-run"):
    """Assert a run went through exactly ``expected`` state names, in order."""
    seen = log.state_names(run_id, kind)
    assert seen == expected, f"{kind} {run_id}: expected {expected}, saw {seen}"
