"""``/api/flow_runs``, ``/api/task_runs`` and ``/api/logs``: the run history, read-only.

Filters are small JSON bodies (every field optional, all AND-ed, lists OR-ed)::

    POST /api/flow_runs/filter
    {"state_type": ["FAILED"], "flow_name": ["etl"], "tags": ["prod"],
     "since": "2024-05-01T00:00:00Z", "limit": 50, "offset": 0, "order": "DESC"}

``POST /api/task_runs/filter`` takes the same fields plus ``flow_run_id``
(:mod:`headwater.storage.run_filters` has their shapes). A run by id comes
with its state history (oldest first); its logs are ``GET .../{id}/logs`` or
``POST /api/logs/filter``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.routing import BaseRoute, Route

from headwater.server.errors import HTTPError, JSONResponse, decode_body
from headwater.server.state import get_state
from headwater.storage.crashes import mark_crashed_runs
from headwater.storage.database import Database
from headwater.storage.queries import (
    read_flow_run,
    read_flow_runs,
    read_logs,
    read_task_run,
    read_task_runs,
)
from headwater.storage.run_filters import FlowRunFilter, LogFilter, TaskRunFilter

__all__ = ["routes"]


CRASH_SWEEP_EVERY = 1.0
"""Run listings check for dead processes at most this often (seconds), besides the minutely
sweep of persistence, so a killed client's runs read Crashed at once, not up to a minute on."""


async def _database(request: Request) -> Database:
    state = get_state(request)
    now = time.monotonic()
    if now - state.last_crash_sweep >= CRASH_SWEEP_EVERY:
        state.last_crash_sweep = now
        await mark_crashed_runs(state.database, state.bus)
    return state.database


def _run_id(request: Request, kind: str) -> uuid.UUID:
    text = request.path_params["id"]
    try:
        return uuid.UUID(text)
    except ValueError:
        raise HTTPError(422, f"{kind} id {text[:64]!r} is not a UUID") from None


def _int_param(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise HTTPError(
            422, f"query parameter {name!r} must be an integer from {low} to {high}, got {raw!r}"
        )
    return value


def _with_states(run: Any, states: list[Any]) -> dict[str, Any]:
    body: dict[str, Any] = msgspec.to_builtins(run)
    body["states"] = msgspec.to_builtins(states)
    return body


async def filter_flow_runs(request: Request) -> JSONResponse:
    body = await decode_body(request, FlowRunFilter)
    # the filter's fields are the reader's keyword arguments, one for one
    runs = await read_flow_runs(await _database(request), **msgspec.structs.asdict(body))
    return JSONResponse(runs)


async def filter_task_runs(request: Request) -> JSONResponse:
    body = await decode_body(request, TaskRunFilter)
    # the filter's fields are the reader's keyword arguments, one for one
    runs = await read_task_runs(await _database(request), **msgspec.structs.asdict(body))
    return JSONResponse(runs)


async def get_flow_run(request: Request) -> JSONResponse:
    run_id = _run_id(request, "flow run")
    detail = await read_flow_run(await _database(request), run_id, log_limit=0)
    if detail is None:
        raise HTTPError(404, f"no flow run with id '{run_id}'")
    return JSONResponse(_with_states(detail.run, detail.states))


async def get_task_run(request: Request) -> JSONResponse:
    run_id = _run_id(request, "task run")
    detail = await read_task_run(await _database(request), run_id, log_limit=0)
    if detail is None:
        raise HTTPError(404, f"no task run with id '{run_id}'")
    return JSONResponse(_with_states(detail.run, detail.states))


async def _run_logs(request: Request, kind: str) -> JSONResponse:
    run_id = _run_id(request, kind)
    database = get_state(request).database
    limit = _int_param(request, "limit", 200, 1, 1000)
    offset = _int_param(request, "offset", 0, 0, 2**62)
    min_level = _int_param(request, "min_level", None, 0, 100)
    assert limit is not None and offset is not None
    if kind == "flow run":
        logs = await read_logs(
            database, flow_run_id=run_id, min_level=min_level, limit=limit, offset=offset
        )
        exists = bool(logs) or await read_flow_run(database, run_id, log_limit=0) is not None
    else:
        logs = await read_logs(
            database, task_run_id=run_id, min_level=min_level, limit=limit, offset=offset
        )
        exists = bool(logs) or await read_task_run(database, run_id, log_limit=0) is not None
    if not exists:
        raise HTTPError(404, f"no {kind} with id '{run_id}'")
    return JSONResponse(logs)


async def flow_run_logs(request: Request) -> JSONResponse:
    return await _run_logs(request, "flow run")


async def task_run_logs(request: Request) -> JSONResponse:
    return await _run_logs(request, "task run")


async def filter_logs(request: Request) -> JSONResponse:
    body = await decode_body(request, LogFilter)
    # the filter's fields are the reader's keyword arguments, one for one
    logs = await read_logs(get_state(request).database, **msgspec.structs.asdict(body))
    return JSONResponse(logs)


def routes() -> list[BaseRoute]:
    """The run history routes, relative to ``/api``."""
    return [
        Route("/flow_runs/filter", filter_flow_runs, methods=["POST"]),
        Route("/flow_runs/{id}", get_flow_run, methods=["GET"]),
        Route("/flow_runs/{id}/logs", flow_run_logs, methods=["GET"]),
        Route("/task_runs/filter", filter_task_runs, methods=["POST"]),
        Route("/task_runs/{id}", get_task_run, methods=["GET"]),
        Route("/task_runs/{id}/logs", task_run_logs, methods=["GET"]),
        Route("/logs/filter", filter_logs, methods=["POST"]),
    ]
