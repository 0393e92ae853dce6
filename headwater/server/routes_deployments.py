"""``/api/deployments``, ``/api/flows`` and ``/api/runner``: deployments through the server.

The same store as embedded mode does the work (:mod:`headwater.deployments`), on the
server's database; its state changes are published on the server's bus, so they are stored
and reach the feed, where launchers and ``run_deployment`` callers are woken by them.

- ``POST /deployments/`` (``?paused=true|false``) registers (creates or updates) one;
- ``POST /deployments/filter`` lists (``{"flow_name": ...}``); ``GET /deployments/{id}``
  and ``GET /deployments/name/{flow}/{name}`` read one; ``DELETE /deployments/{id}``;
- ``POST /deployments/{id}/pause_deployment`` and ``/resume_deployment``;
- ``POST /deployments/{id}/create_flow_run``: 201 with the run, 200 when its idempotency
  key named an existing one, 409 when the parameters do not fit the flow;
- ``GET /flows``; ``POST /flow_runs/{id}/cancel``;
- ``/runner/*``: what a serve process asks for its deployments (schedule, mark late,
  claim, next due, runs to stop, end a run, read a run).
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
import msgspec
from starlette.requests import Request
from starlette.routing import BaseRoute, Route

from headwater.deployments import runs, store
from headwater.deployments.backend import CreatedRun, CreateRun, EndRun, RunnerRequest
from headwater.deployments.model import DeploymentDefinition
from headwater.exceptions import DeploymentNotFound, DeploymentValidationError
from headwater.server.errors import HTTPError, JSONResponse, decode_body

__all__ = ["routes"]

T = TypeVar("T")


class _Filter(msgspec.Struct, forbid_unknown_fields=True):
    flow_name: str | None = None


class _Cancel(msgspec.Struct, forbid_unknown_fields=True):
    message: str = "Cancelled through the API"


async def _call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a store call off the loop; its errors become 404 / 409 with their message."""
    try:
        return await anyio.to_thread.run_sync(lambda: function(*args, **kwargs))
    except DeploymentNotFound as exc:
        raise HTTPError(404, str(exc)) from None
    except DeploymentValidationError as exc:
        raise HTTPError(409, str(exc)) from None


def _uuid(request: Request, name: str = "id") -> uuid.UUID:
    text = request.path_params[name]
    try:
        return uuid.UUID(text)
    except ValueError:
        raise HTTPError(422, f"{name} {text[:64]!r} is not a UUID") from None


async def apply(request: Request) -> JSONResponse:
    definition = await decode_body(request, DeploymentDefinition)
    raw = request.query_params.get("paused")
    if raw not in (None, "true", "false"):
        raise HTTPError(422, f"query parameter 'paused' must be true or false, got {raw!r}")
    paused = None if raw is None else raw == "true"
    return JSONResponse(await _call(store.apply_deployment, definition, paused=paused))


async def filter_deployments(request: Request) -> JSONResponse:
    body = await decode_body(request, _Filter)
    return JSONResponse(await _call(store.read_deployments, body.flow_name))


async def read_by_id(request: Request) -> JSONResponse:
    return JSONResponse(await _call(store.read_deployment, _uuid(request)))


async def read_by_name(request: Request) -> JSONResponse:
    name = f"{request.path_params['flow']}/{request.path_params['name']}"
    return JSONResponse(await _call(store.read_deployment, name))


async def delete(request: Request) -> JSONResponse:
    return JSONResponse(await _call(store.delete_deployment, _uuid(request)))


async def pause(request: Request) -> JSONResponse:
    return JSONResponse(await _call(store.set_paused, _uuid(request), True))


async def resume(request: Request) -> JSONResponse:
    return JSONResponse(await _call(store.set_paused, _uuid(request), False))


async def create_flow_run(request: Request) -> JSONResponse:
    deployment_id = _uuid(request)
    body = await decode_body(request, CreateRun)
    deployment = await _call(store.read_deployment, deployment_id)
    run, created = await _call(lambda: runs.create_run(deployment, **msgspec.structs.asdict(body)))
    return JSONResponse(CreatedRun(run, created), status_code=201 if created else 200)


async def flows(request: Request) -> JSONResponse:
    return JSONResponse(await _call(store.read_flows))


async def cancel(request: Request) -> JSONResponse:
    body = await decode_body(request, _Cancel)
    return JSONResponse(await _call(runs.request_cancellation, _uuid(request), body.message))


async def _deployments(body: RunnerRequest) -> dict[str, DeploymentDefinition]:
    """The launcher's deployments as stored now, in one read (deleted ones left out)."""
    wanted = {str(deployment_id) for deployment_id in body.deployment_ids}
    stored = await _call(store.read_deployments)
    return {str(d.id): d for d in stored if str(d.id) in wanted}


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


async def runner_schedule(request: Request) -> JSONResponse:
    body = await decode_body(request, RunnerRequest)
    deployments = await _deployments(body)
    return JSONResponse(
        await _call(runs.schedule_runs, list(deployments.values()), _now(), body.policy)
    )


async def runner_mark_late(request: Request) -> JSONResponse:
    body = await decode_body(request, RunnerRequest)
    after = datetime.timedelta(seconds=body.late_after_seconds)
    return JSONResponse(await _call(runs.mark_late, await _deployments(body), _now(), after))


async def runner_claim(request: Request) -> JSONResponse:
    body = await decode_body(request, RunnerRequest)
    if not body.launcher:
        raise HTTPError(422, "launcher: a claim must say which launcher takes the runs")
    deployments = await _deployments(body)
    return JSONResponse(
        await _call(runs.claim_due, deployments, _now(), body.launcher, body.capacity)
    )


async def runner_next_due(request: Request) -> JSONResponse:
    body = await decode_body(request, RunnerRequest)
    return JSONResponse(await _call(runs.next_due, [str(i) for i in body.deployment_ids]))


async def runner_to_stop(request: Request) -> JSONResponse:
    body = await decode_body(request, RunnerRequest)
    return JSONResponse(await _call(runs.runs_to_stop, body.launcher, body.run_ids))


async def runner_read_run(request: Request) -> JSONResponse:
    found = await _call(runs.read_run, _uuid(request))
    if found is None:
        raise HTTPError(404, f"no flow run with id '{request.path_params['id']}'")
    return JSONResponse(found)


async def runner_end_run(request: Request) -> JSONResponse:
    body = await decode_body(request, EndRun)
    return JSONResponse(
        await _call(runs.end_run, _uuid(request), body.state_type, body.state_name, body.message)
    )


def routes() -> list[BaseRoute]:
    """Relative to ``/api``."""
    return [
        Route("/deployments/", apply, methods=["POST"]),
        Route("/deployments/filter", filter_deployments, methods=["POST"]),
        Route("/deployments/name/{flow}/{name}", read_by_name, methods=["GET"]),
        Route("/deployments/{id}", read_by_id, methods=["GET"]),
        Route("/deployments/{id}", delete, methods=["DELETE"]),
        Route("/deployments/{id}/pause_deployment", pause, methods=["POST"]),
        Route("/deployments/{id}/resume_deployment", resume, methods=["POST"]),
        Route("/deployments/{id}/create_flow_run", create_flow_run, methods=["POST"]),
        Route("/flows", flows, methods=["GET"]),
        Route("/flow_runs/{id}/cancel", cancel, methods=["POST"]),
        Route("/runner/schedule", runner_schedule, methods=["POST"]),
        Route("/runner/mark_late", runner_mark_late, methods=["POST"]),
        Route("/runner/claim", runner_claim, methods=["POST"]),
        Route("/runner/next_due", runner_next_due, methods=["POST"]),
        Route("/runner/to_stop", runner_to_stop, methods=["POST"]),
        Route("/runner/flow_runs/{id}", runner_read_run, methods=["GET"]),
        Route("/runner/flow_runs/{id}/end", runner_end_run, methods=["POST"]),
    ]
