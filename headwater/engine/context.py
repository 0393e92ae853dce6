"""Run context: which flow run and task run the current code belongs to.

Kept in contextvars so it follows ``await``s and, because the task runner copies the
context into its threads, it follows work into worker threads too (Prefect users hit
``MissingContextError`` in threads; headwater's users do not).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import anyio.abc

    from headwater.engine.flow_definition import FlowDefinition
    from headwater.engine.runs import FlowRun, TaskRun
    from headwater.engine.task_definition import TaskDefinition
    from headwater.engine.task_runners import TaskRunner

__all__ = [
    "FlowRunContext",
    "TaskRunContext",
    "current_flow_run",
    "current_task_run",
    "current_tags",
    "get_run_context",
    "related_resources",
    "tags",
]


class FlowRunContext:
    """What a flow run shares with the code and tasks inside it."""

    __slots__ = (
        "flow",
        "flow_run",
        "log_prints",
        "loop",
        "persist_result",
        "result_store",
        "task_group",
        "task_run_counters",
        "task_runner",
        "thread_id",
    )

    def __init__(
        self,
        flow: FlowDefinition[..., Any],
        flow_run: FlowRun,
        task_runner: TaskRunner,
        log_prints: bool,
        loop: Any = None,
        thread_id: int | None = None,
        persist_result: bool = False,
        result_store: Any = None,
    ) -> None:
        self.flow = flow
        self.flow_run = flow_run
        self.task_runner = task_runner
        self.log_prints = log_prints
        # what tasks that do not say inherit: persist or not, and where (None: the default)
        self.persist_result = persist_result
        self.result_store = result_store
        # task key -> how many runs of that task this flow run has made (run names: name-k)
        self.task_run_counters: dict[str, int] = {}
        self.task_group: anyio.abc.TaskGroup | None = None
        self.loop = loop
        self.thread_id = thread_id

    def next_task_index(self, task_key: str) -> int:
        counters = self.task_run_counters
        index = counters.get(task_key, 0)
        counters[task_key] = index + 1
        return index


class TaskRunContext:
    """The task run the current code belongs to."""

    __slots__ = ("args", "kwargs", "log_prints", "task", "task_run")

    def __init__(
        self,
        task: TaskDefinition[..., Any],
        task_run: TaskRun,
        log_prints: bool,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.task = task
        self.task_run = task_run
        self.log_prints = log_prints
        self.args = args
        self.kwargs = kwargs or {}

    def bound_parameters(self) -> dict[str, Any]:
        """The call's arguments by parameter name (bound on demand: the hot path skips it)."""
        return self.task.parameters.bind(self.args, self.kwargs)

    @property
    def parameters(self) -> dict[str, Any]:
        """The call's arguments by parameter name (Prefect's ``TaskRunContext.parameters``)."""
        return self.bound_parameters()


flow_run_context: contextvars.ContextVar[FlowRunContext | None] = contextvars.ContextVar(
    "headwater_flow_run", default=None
)
task_run_context: contextvars.ContextVar[TaskRunContext | None] = contextvars.ContextVar(
    "headwater_task_run", default=None
)
_tags: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "headwater_tags", default=frozenset()
)


def current_flow_run() -> FlowRunContext | None:
    return flow_run_context.get()


def current_task_run() -> TaskRunContext | None:
    return task_run_context.get()


def get_run_context() -> TaskRunContext | FlowRunContext:
    """The innermost run this code is in: its task run, else its flow run (Prefect's).

    Raises:
        MissingContextError: called outside any flow or task run.
    """
    task_context = task_run_context.get()
    if task_context is not None:
        return task_context
    flow_context = flow_run_context.get()
    if flow_context is not None:
        return flow_context
    from headwater.exceptions import MissingContextError

    raise MissingContextError("no run context: get_run_context() was called outside a run")


def current_tags() -> frozenset[str]:
    return _tags.get()


@contextmanager
def tags(*new_tags: str) -> Iterator[set[str]]:
    """Add tags to every flow run and task run created inside the block.

    Nested blocks add up. Yields the full set of tags now in effect.

    Example:
        ``with tags("prod", "etl"): my_flow()``
    """
    for tag in new_tags:
        if not isinstance(tag, str) or not tag:
            raise ValueError(f"tags must be non-empty strings, got {tag!r}")
    current = _tags.get() | frozenset(new_tags)
    token = _tags.set(current)
    try:
        yield set(current)
    finally:
        _tags.reset(token)


def related_resources() -> list[dict[str, str]]:
    """The current run's resources, for events emitted inside it (Prefect does the same)."""
    task_ctx = task_run_context.get()
    flow_ctx = flow_run_context.get()
    related: list[dict[str, str]] = []
    if task_ctx is not None:
        task_run = task_ctx.task_run
        related.append(
            {
                "headwater.resource.id": f"headwater.task-run.{task_run.id}",
                "headwater.resource.role": "task-run",
                "headwater.resource.name": task_run.name,
            }
        )
    if flow_ctx is not None:
        flow_run = flow_ctx.flow_run
        related.append(
            {
                "headwater.resource.id": f"headwater.flow-run.{flow_run.id}",
                "headwater.resource.role": "flow-run",
                "headwater.resource.name": flow_run.name,
            }
        )
        related.append(
            {
                "headwater.resource.id": f"headwater.flow.{flow_run.flow_name}",
                "headwater.resource.role": "flow",
                "headwater.resource.name": flow_run.flow_name,
            }
        )
    run_tags = set(task_ctx.task_run.tags) if task_ctx is not None else set()
    if flow_ctx is not None:
        run_tags.update(flow_ctx.flow_run.tags)
    for tag in sorted(run_tags):
        related.append(
            {"headwater.resource.id": f"headwater.tag.{tag}", "headwater.resource.role": "tag"}
        )
    return related
