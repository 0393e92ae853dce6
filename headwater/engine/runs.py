"""Flow runs, task runs, and the one transition function both go through.

``set_state`` is the whole transition path (propose -> validate -> record -> publish) for
sync and async runs alike. It publishes a compact
:class:`~headwater.engine.transitions.TransitionRecord` rather than a full Event; the
consumers build the event off the per-task path.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from headwater.engine.states import TERMINAL_STATES, State, StateType
from headwater.engine.transitions import RunIdentity, TransitionRecord
from headwater.events.bus import get_bus
from headwater.ids import new_uuid

__all__ = ["FlowRun", "TaskRun", "seal", "set_state"]


class FlowRun:
    """A flow run as hooks and ``headwater.runtime`` see it."""

    __slots__ = (
        "end_time",
        "flow_name",
        "flow_version",
        "id",
        "identity",
        "name",
        "parameters",
        "deployment",
        "parent_flow_run_id",
        "parent_task_run_id",
        "root_flow_run_id",
        "run_count",
        "start_time",
        "state",
        "tags",
    )

    def __init__(
        self,
        flow_name: str,
        name: str,
        parameters: dict[str, Any],
        tags: tuple[str, ...],
        parent: FlowRun | None,
        flow_version: str | None,
        *,
        run_id: uuid.UUID | None = None,
        deployment: tuple[uuid.UUID, str] | None = None,
        parent_task_run_id: uuid.UUID | None = None,
    ) -> None:
        # run_id: a run made before it started (a deployment's), adopted by its process
        self.id = new_uuid() if run_id is None else run_id
        self.deployment = deployment
        self.parent_task_run_id = parent_task_run_id
        self.name = name
        self.flow_name = flow_name
        self.flow_version = flow_version
        self.parameters = parameters
        self.tags = tags
        self.run_count = 0
        self.state: State[Any] | None = None
        self.parent_flow_run_id = parent.id if parent is not None else None
        self.root_flow_run_id: uuid.UUID = (
            parent.root_flow_run_id if parent is not None else self.id
        )
        self.start_time: datetime.datetime | None = None
        self.end_time: datetime.datetime | None = None
        self.identity = self._make_identity()

    def adopt_parent(self, parent_flow_run_id: uuid.UUID) -> None:
        """A run started in another process on behalf of ``parent_flow_run_id``."""
        self.parent_flow_run_id = self.root_flow_run_id = parent_flow_run_id
        self.identity = self._make_identity()

    def rename(self, name: str) -> None:
        self.name = name
        self.identity = self._make_identity()

    def _make_identity(self) -> RunIdentity:
        return RunIdentity(
            "flow-run",
            self.id,
            self.name,
            self.flow_name,
            parent_flow_run_id=self.parent_flow_run_id,
            tags=self.tags,
            flow_version=self.flow_version,
            parameters=self.parameters,
            deployment=self.deployment,
            parent_task_run_id=self.parent_task_run_id,
        )

    def __repr__(self) -> str:
        state = self.state.name if self.state else None
        return f"FlowRun(id={self.id}, name={self.name!r}, flow={self.flow_name!r}, state={state})"


class TaskRun:
    """A task run as hooks and ``headwater.runtime`` see it."""

    __slots__ = (
        "end_time",
        "flow_run_id",
        "id",
        "identity",
        "name",
        "parameters",
        "run_count",
        "sealed",
        "start_time",
        "state",
        "tags",
        "task_key",
        "task_name",
    )

    def __init__(
        self,
        task_key: str,
        task_name: str,
        name: str,
        tags: tuple[str, ...],
        flow_run: FlowRun | None,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        self.id = uuid_id = new_uuid()
        self.name = name
        self.task_key = task_key
        self.task_name = task_name
        self.flow_run_id = flow_run.id if flow_run is not None else None
        self.tags = tags
        self.run_count = 0
        self.state: State[Any] | None = None
        self.start_time: datetime.datetime | None = None
        self.end_time: datetime.datetime | None = None
        self.parameters = parameters
        # set when its flow run closed it (interrupted): later states are not recorded
        self.sealed = False
        self.identity = RunIdentity(
            "task-run",
            uuid_id,
            name,
            flow_run.flow_name if flow_run is not None else None,
            flow_run_id=self.flow_run_id,
            flow_run_name=flow_run.name if flow_run is not None else None,
            task_key=task_key,
            task_name=task_name,
            tags=tags,
        )

    def __repr__(self) -> str:
        state = self.state.name if self.state else None
        return f"TaskRun(id={self.id}, name={self.name!r}, state={state})"


def set_state(run: FlowRun | TaskRun, state: State[Any]) -> TransitionRecord | None:
    """Make ``state`` the run's current state and publish the transition.

    This is the only place a run's state changes. It stamps the run ids on the state,
    keeps ``run_count``/``start_time``/``end_time`` (Prefect's global transforms), and
    puts one record on the bus; the event id is the state id and ``follows`` is the
    previous state's id. A sealed task run (see :func:`seal`) changes no more.
    """
    if type(run) is TaskRun and run.sealed:
        return None
    previous = run.state
    details = state.state_details
    if type(run) is TaskRun:
        details.task_run_id = run.id
        details.flow_run_id = run.flow_run_id
    else:
        details.flow_run_id = run.id
    state_type = state.type
    if state_type is StateType.RUNNING:
        run.run_count += 1
        if run.start_time is None:
            run.start_time = state.timestamp
    elif state_type in TERMINAL_STATES:
        run.end_time = state.timestamp
    run.state = state
    record = TransitionRecord(
        run.identity,
        run.run_count,
        None
        if previous is None
        else (previous.id, previous.type, previous.name, previous.message, previous.timestamp),
        (state.id, state_type, state.name, state.message, state.timestamp),
    )
    get_bus().publish(record)
    return record


def seal(run: TaskRun, state: State[Any]) -> None:
    """Give ``run`` its final ``state`` on behalf of its flow run, and record nothing after.

    For a task run its flow run must leave behind (the flow was interrupted): its own
    thread may still report later, and must not be recorded after the flow's final state.
    """
    if run.sealed or (run.state is not None and run.state.is_final()):
        return
    set_state(run, state)
    run.sealed = True
