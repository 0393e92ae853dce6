"""Building an artifact record: checking and encoding what a run publishes."""

from __future__ import annotations

import datetime
import math
import warnings
from collections.abc import Mapping
from typing import Any

import msgspec

from headwater.artifacts.store import Artifact, check_key
from headwater.exceptions import ArtifactProgressWarning, InvalidArtifactError
from headwater.ids import new_uuid

__all__ = ["build_artifact", "check_text", "link_data", "progress_value", "table_data"]

_UTC = datetime.timezone.utc


def check_text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidArtifactError(f"{what} must be a string, got {type(value).__name__}")
    return value


def _clean(value: Any) -> Any:
    """NaN and infinities become None (JSON null), as Prefect does; containers recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    return value


def _cell(value: Any) -> Any:
    # numpy and pandas scalars know their Python value; anything else is shown as text.
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return _clean(item())
        except (TypeError, ValueError):
            pass
    return str(value)


_encoder = msgspec.json.Encoder(enc_hook=_cell)


def table_data(table: Any) -> str:
    """A table as Prefect stores it: JSON text of the table with NaN as null.

    Accepts a dict of columns (name -> list of values), a list of row dicts, or a list of
    lists (rows).

    Raises:
        InvalidArtifactError: anything else, or rows of mixed kinds.
    """
    if isinstance(table, Mapping):
        for name, column in table.items():
            if not isinstance(column, (list, tuple)):
                raise InvalidArtifactError(
                    f"table column {name!r} must be a list of values, got {type(column).__name__}"
                )
    elif isinstance(table, (list, tuple)):
        rows_of_dicts = all(isinstance(row, Mapping) for row in table)
        if not rows_of_dicts and not all(isinstance(row, (list, tuple)) for row in table):
            raise InvalidArtifactError(
                "a table must be a dict of columns, a list of row dicts or a list of lists; "
                "this list mixes rows of different kinds"
            )
    else:
        raise InvalidArtifactError(
            "a table must be a dict of columns, a list of row dicts or a list of lists, "
            f"got {type(table).__name__}"
        )
    return _encoder.encode(_clean(table)).decode()


def link_data(link: str, link_text: str | None) -> str:
    """A link as Prefect stores it: ``[text](url)``."""
    check_text(link, "link")
    if not link:
        raise InvalidArtifactError("link must not be empty")
    text = link if link_text is None else check_text(link_text, "link_text")
    return f"[{text}]({link})"


def progress_value(progress: Any, stacklevel: int) -> float:
    """``progress`` as a float in 0-100, clamped with an :class:`ArtifactProgressWarning`.

    Raises:
        InvalidArtifactError: not a number, or NaN.
    """
    if isinstance(progress, bool) or not isinstance(progress, (int, float)):
        raise InvalidArtifactError(
            f"progress must be a number from 0 to 100, got {type(progress).__name__}"
        )
    value = float(progress)
    if math.isnan(value):
        raise InvalidArtifactError("progress must be a number from 0 to 100, got NaN")
    if value < 0 or value > 100:
        clamped = min(100.0, max(0.0, value))
        warnings.warn(
            f"progress {progress!r} is outside 0-100; it was clamped to {clamped:g}",
            ArtifactProgressWarning,
            stacklevel=stacklevel + 1,
        )
        return clamped
    return value


def build_artifact(type: str, data: Any, key: str | None, description: str | None) -> Artifact:
    """A new artifact attached to the current flow run and task run, if any."""
    from headwater.engine.context import current_flow_run, current_task_run

    check_key(key)
    if description is not None:
        check_text(description, "description")
    task_ctx = current_task_run()
    flow_ctx = current_flow_run()
    flow_run_id = flow_ctx.flow_run.id if flow_ctx is not None else None
    task_run_id = None
    if task_ctx is not None:
        task_run_id = task_ctx.task_run.id
        flow_run_id = task_ctx.task_run.flow_run_id or flow_run_id
    now = datetime.datetime.now(_UTC)
    return Artifact(
        id=new_uuid(),
        key=key,
        type=type,
        description=description,
        data=data,
        flow_run_id=flow_run_id,
        task_run_id=task_run_id,
        created=now,
        updated=now,
    )
