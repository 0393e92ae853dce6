"""Task inputs: finding upstream futures and states in arguments and replacing them by results.

Resolution happens in two steps so that waiting has a sync and an async form while the
walk itself is shared: ``collect_upstreams`` finds what to wait for, the caller waits,
then ``resolve`` substitutes results (or reports the upstream that did not complete).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable
from typing import Any

from headwater.engine.annotations import allow_failure, opaque, quote
from headwater.engine.futures import HeadwaterFuture
from headwater.engine.states import State, StateType

__all__ = ["NotReadyUpstream", "collect_upstreams", "needs_resolution", "resolve"]

_ATOMIC = frozenset({int, float, str, bytes, bool, type(None), complex})


class NotReadyUpstream(Exception):
    """An upstream future or state that did not complete; the task must not run."""

    def __init__(self, description: str) -> None:
        self.description = description
        super().__init__(description)


def needs_resolution(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Cheap test for the common case: only plain scalars, nothing to resolve."""
    for value in args:
        if type(value) not in _ATOMIC:
            return True
    return any(type(value) not in _ATOMIC for value in kwargs.values())


def collect_upstreams(values: Iterable[Any]) -> list[HeadwaterFuture[Any]]:
    """Every future found inside ``values`` (not inside ``quote``s)."""
    found: list[HeadwaterFuture[Any]] = []
    for value in values:
        _collect(value, found, depth=0)
    return found


def _collect(value: Any, found: list[HeadwaterFuture[Any]], depth: int) -> None:
    kind = type(value)
    if kind in _ATOMIC or depth > 50:
        return
    if isinstance(value, HeadwaterFuture):
        found.append(value)
    elif isinstance(value, quote):
        return
    elif isinstance(value, (allow_failure, opaque)):
        inner = value.unwrap()
        if isinstance(inner, HeadwaterFuture):
            found.append(inner)
        elif isinstance(value, allow_failure):
            _collect(inner, found, depth + 1)
    elif kind in (list, tuple, set, frozenset):
        for item in value:
            _collect(item, found, depth + 1)
    elif kind is dict:
        for item in value.values():
            _collect(item, found, depth + 1)
    else:
        fields = _object_fields(value)
        if fields is not None:
            for item in fields.values():
                _collect(item, found, depth + 1)


def resolve(value: Any, allow: bool = False, depth: int = 0) -> Any:
    """Return ``value`` with finished futures and states replaced by their results.

    Raises:
        NotReadyUpstream: an upstream did not complete and is not wrapped in allow_failure
            (Crashed and Cancelled upstreams block even then).
    """
    kind = type(value)
    if kind in _ATOMIC or depth > 50:
        return value
    if isinstance(value, HeadwaterFuture):
        return _state_value(value.state, allow, f"task run {value.task_run.name!r}")
    if isinstance(value, State):
        return _state_value(value, allow, f"state {value.name!r}")
    if isinstance(value, quote):
        return value.unwrap()
    if isinstance(value, allow_failure):
        return resolve(value.unwrap(), True, depth + 1)
    if isinstance(value, opaque):
        inner = value.unwrap()
        if isinstance(inner, (HeadwaterFuture, State)):
            return resolve(inner, allow, depth + 1)
        return inner
    if kind in (list, tuple, set, frozenset):
        items = [resolve(item, allow, depth + 1) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return items if kind is list else kind(items)
    if kind is dict:
        resolved = {key: resolve(item, allow, depth + 1) for key, item in value.items()}
        if all(resolved[key] is item for key, item in value.items()):
            return value
        return resolved
    fields = _object_fields(value)
    if fields:
        changed = {}
        for name, item in fields.items():
            new = resolve(item, allow, depth + 1)
            if new is not item:
                changed[name] = new
        if changed:
            return _rebuild(value, changed)
    return value


def _object_fields(value: Any) -> dict[str, Any] | None:
    """The fields of a dataclass instance or pydantic model, which Prefect walks too."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    model_fields = getattr(type(value), "model_fields", None)
    if isinstance(model_fields, dict) and hasattr(value, "model_copy"):
        return {name: getattr(value, name) for name in model_fields}
    return None


def _rebuild(value: Any, changed: dict[str, Any]) -> Any:
    if hasattr(value, "model_copy"):
        return value.model_copy(update=changed)
    rebuilt = copy.copy(value)
    for name, item in changed.items():
        object.__setattr__(rebuilt, name, item)  # frozen dataclasses too
    return rebuilt


def _state_value(state: State[Any], allow: bool, description: str) -> Any:
    if state.type is StateType.COMPLETED:
        return state.result_now()
    blocking = state.type in (StateType.CRASHED, StateType.CANCELLED)
    acceptable = state.type is StateType.FAILED or state.name == "NotReady"
    if allow and acceptable and not blocking:
        return state.result_now(raise_on_failure=False) if state.is_final() else None
    raise NotReadyUpstream(description)


def check_wait_for(wait_for: Iterable[Any]) -> None:
    """Raise NotReadyUpstream unless every ``wait_for`` entry completed (or is allowed)."""
    for item in wait_for:
        resolve(item)
