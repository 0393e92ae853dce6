"""The filters of the run history, as the API carries them: one shape for every reader.

The fields of :class:`FlowRunFilter`, :class:`TaskRunFilter` and :class:`LogFilter` are,
one for one, the keyword arguments of :func:`~headwater.storage.queries.read_flow_runs`,
:func:`~headwater.storage.queries.read_task_runs` and
:func:`~headwater.storage.queries.read_logs`. The server decodes request bodies into them
and the HTTP client encodes its calls with them, so a filter cannot mean one thing locally
and another through a server. One request returns at most :data:`PAGE_LIMIT` items.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

import msgspec

__all__ = [
    "PAGE_LIMIT",
    "FlowRunFilter",
    "LogFilter",
    "RunFilter",
    "StateType",
    "TaskRunFilter",
    "filter_from",
]

PAGE_LIMIT = 1000
"""The most items one request may ask for; readers page past it."""

StateType = Literal[
    "SCHEDULED",
    "PENDING",
    "RUNNING",
    "PAUSED",
    "CANCELLING",
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "CRASHED",
]
Limit = Annotated[int, msgspec.Meta(ge=1, le=PAGE_LIMIT)]
Offset = Annotated[int, msgspec.Meta(ge=0)]


class RunFilter(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What flow-run and task-run filters share: every field optional, AND-ed; lists OR-ed."""

    state_type: list[StateType] | None = None
    state_name: list[str] | None = None
    flow_name: list[str] | None = None
    tags: list[str] | None = None
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None
    limit: Limit = 50
    offset: Offset = 0
    order: Literal["ASC", "DESC"] = "DESC"


class FlowRunFilter(RunFilter, kw_only=True):
    """Flow runs; ``parent_flow_run_id`` selects subflow runs."""

    parent_flow_run_id: uuid.UUID | None = None


class TaskRunFilter(RunFilter, kw_only=True):
    """Task runs; ``flow_run_id`` selects one flow run's tasks."""

    flow_run_id: uuid.UUID | None = None


class LogFilter(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Run logs, oldest first."""

    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None
    min_level: int | None = None
    limit: Limit = 200
    offset: Offset = 0


F = TypeVar("F", bound=msgspec.Struct)

_LISTS = ("state_type", "state_name", "flow_name", "tags")


def filter_from(kind: type[F], fields: Mapping[str, Any]) -> F:
    """A filter from keyword arguments as the readers take them (one string for a list).

    Raises:
        TypeError: an argument the filter does not have.
        ValueError: a value of the wrong type or out of range, naming the field.
    """
    unknown = sorted(set(fields) - set(kind.__struct_fields__))
    if unknown:
        raise TypeError(f"{kind.__name__} has no field(s) {', '.join(unknown)}")
    data = {name: value for name, value in fields.items() if value is not None}
    for name in _LISTS:
        if isinstance(data.get(name), str):
            data[name] = [data[name]]
    try:
        return msgspec.convert(data, kind, from_attributes=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid {kind.__name__}: {exc}") from None
