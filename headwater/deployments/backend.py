"""Where deployments live: the local database, or the server ``HEADWATER_API_URL`` names.

Everything that registers, reads, runs, schedules or launches deployments goes through
:func:`get_backend`, so the same code (``flow.serve()``, ``run_deployment``, the CLI)
works embedded and against a server: :class:`LocalBackend` calls the store directly;
:class:`ApiBackend` sends the same operations to the server's ``/api/deployments`` and
``/api/runner`` endpoints, which call the same store there. Calls are blocking (run them
in a worker thread from async code).
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable
from typing import Any, Protocol, TypeVar

import msgspec

from headwater.deployments import runs, store
from headwater.deployments.model import DeploymentDefinition, parse_deployment_name
from headwater.deployments.runs import Claim, RunRow
from headwater.deployments.store import DeploymentRef, FlowSummary
from headwater.engine.states import StateType
from headwater.exceptions import ApiError, DeploymentNotFound, DeploymentValidationError
from headwater.settings import Settings, get_settings

__all__ = [
    "ApiBackend",
    "Backend",
    "CreateRun",
    "LocalBackend",
    "RunnerRequest",
    "get_backend",
]

T = TypeVar("T")


class CreateRun(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A request for a run of a deployment (the body of ``create_flow_run``)."""

    parameters: dict[str, Any] | None = None
    scheduled_time: datetime.datetime | None = None
    flow_run_name: str | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    idempotency_key: str | None = None
    parent_flow_run_id: uuid.UUID | None = None
    parent_task_run_id: uuid.UUID | None = None


class CreatedRun(msgspec.Struct):
    run: RunRow
    created: bool


class RunnerRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What a launcher asks the server for its deployments (``/api/runner/*``)."""

    deployment_ids: list[uuid.UUID]
    run_ids: list[uuid.UUID] = msgspec.field(default_factory=list)
    launcher: str = ""
    capacity: int = 0
    late_after_seconds: float = 15.0
    policy: runs.SchedulingPolicy | None = None


class EndRun(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    state_type: StateType
    state_name: str
    message: str


class Backend(Protocol):
    def apply(
        self, definition: DeploymentDefinition, paused: bool | None
    ) -> DeploymentDefinition: ...
    def read(self, ref: DeploymentRef) -> DeploymentDefinition: ...
    def deployments(self, flow_name: str | None = None) -> list[DeploymentDefinition]: ...
    def set_paused(self, ref: DeploymentRef, paused: bool) -> DeploymentDefinition: ...
    def delete(self, ref: DeploymentRef) -> DeploymentDefinition: ...
    def flows(self) -> list[FlowSummary]: ...
    def create_run(
        self, ref: DeploymentRef | DeploymentDefinition, request: CreateRun
    ) -> tuple[RunRow, bool]: ...
    def read_run(self, flow_run_id: uuid.UUID) -> RunRow | None: ...
    def cancel_run(self, flow_run_id: uuid.UUID, message: str) -> RunRow | None: ...
    def end_run(
        self, flow_run_id: uuid.UUID, state_type: StateType, state_name: str, message: str
    ) -> RunRow | None: ...
    def schedule(
        self, deployments: list[DeploymentDefinition], policy: runs.SchedulingPolicy
    ) -> int: ...
    def mark_late(
        self, deployments: list[DeploymentDefinition], after: datetime.timedelta
    ) -> int: ...
    def claim(
        self, deployments: list[DeploymentDefinition], launcher: str, capacity: int
    ) -> list[Claim]: ...
    def next_due(self, deployments: list[DeploymentDefinition]) -> datetime.datetime | None: ...
    def runs_to_stop(self, launcher: str, run_ids: list[uuid.UUID]) -> list[RunRow]: ...
    def stamp(self) -> Any: ...


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class LocalBackend:
    """The database of this process's settings."""

    def apply(self, definition: DeploymentDefinition, paused: bool | None) -> DeploymentDefinition:
        return store.apply_deployment(definition, paused=paused)

    def read(self, ref: DeploymentRef) -> DeploymentDefinition:
        return store.read_deployment(ref)

    def deployments(self, flow_name: str | None = None) -> list[DeploymentDefinition]:
        return store.read_deployments(flow_name)

    def set_paused(self, ref: DeploymentRef, paused: bool) -> DeploymentDefinition:
        return store.set_paused(ref, paused)

    def delete(self, ref: DeploymentRef) -> DeploymentDefinition:
        return store.delete_deployment(ref)

    def flows(self) -> list[FlowSummary]:
        return store.read_flows()

    def create_run(
        self, ref: DeploymentRef | DeploymentDefinition, request: CreateRun
    ) -> tuple[RunRow, bool]:
        deployment = ref if isinstance(ref, DeploymentDefinition) else store.read_deployment(ref)
        return runs.create_run(deployment, **msgspec.structs.asdict(request))

    def read_run(self, flow_run_id: uuid.UUID) -> RunRow | None:
        return runs.read_run(flow_run_id)

    def cancel_run(self, flow_run_id: uuid.UUID, message: str) -> RunRow | None:
        return runs.request_cancellation(flow_run_id, message)

    def end_run(
        self, flow_run_id: uuid.UUID, state_type: StateType, state_name: str, message: str
    ) -> RunRow | None:
        return runs.end_run(flow_run_id, state_type, state_name, message)

    def schedule(
        self, deployments: list[DeploymentDefinition], policy: runs.SchedulingPolicy
    ) -> int:
        return runs.schedule_runs(deployments, _now(), policy)

    def mark_late(self, deployments: list[DeploymentDefinition], after: datetime.timedelta) -> int:
        return runs.mark_late({str(d.id): d for d in deployments}, _now(), after)

    def claim(
        self, deployments: list[DeploymentDefinition], launcher: str, capacity: int
    ) -> list[Claim]:
        return runs.claim_due({str(d.id): d for d in deployments}, _now(), launcher, capacity)

    def next_due(self, deployments: list[DeploymentDefinition]) -> datetime.datetime | None:
        return runs.next_due(str(d.id) for d in deployments)

    def runs_to_stop(self, launcher: str, run_ids: list[uuid.UUID]) -> list[RunRow]:
        return runs.runs_to_stop(launcher, run_ids)

    def stamp(self) -> Any:
        """Changes when any deployment changes (a launcher then re-reads its own)."""
        return store.deployments_stamp()


class ApiBackend:
    """The server at ``settings.api_url``; the server's store does the work."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        type_: type[T] | Any = None,
        missing_ok: bool = False,
    ) -> Any:
        import anyio

        from headwater.client.http import HeadwaterClient

        async def call() -> bytes | None:
            async with HeadwaterClient(self.settings) as client:
                content = None if body is None else msgspec.json.encode(body)
                return await client.request(method, path, content=content, missing_ok=missing_ok)

        try:
            data = anyio.run(call)
        except ApiError as exc:
            raise _translated(exc) from None
        if data is None or type_ is None:
            return None
        return msgspec.json.decode(data, type=type_)

    def _path(self, ref: DeploymentRef | DeploymentDefinition) -> str:
        text = str(ref.id) if isinstance(ref, DeploymentDefinition) else str(ref).strip()
        try:
            return f"/deployments/{uuid.UUID(text)}"
        except ValueError:
            flow_name, name = parse_deployment_name(text)
            from urllib.parse import quote

            return f"/deployments/name/{quote(flow_name, safe='')}/{quote(name, safe='')}"

    def apply(self, definition: DeploymentDefinition, paused: bool | None) -> DeploymentDefinition:
        query = "" if paused is None else f"?paused={str(paused).lower()}"
        return self._call("POST", f"/deployments/{query}", definition, DeploymentDefinition)

    def read(self, ref: DeploymentRef) -> DeploymentDefinition:
        found = self._call("GET", self._path(ref), None, DeploymentDefinition, missing_ok=True)
        if found is None:
            raise DeploymentNotFound(f"no deployment {str(ref)!r} on {self.settings.api_url}")
        return found

    def deployments(self, flow_name: str | None = None) -> list[DeploymentDefinition]:
        body = {"flow_name": flow_name}
        return self._call("POST", "/deployments/filter", body, list[DeploymentDefinition])

    def set_paused(self, ref: DeploymentRef, paused: bool) -> DeploymentDefinition:
        verb = "pause_deployment" if paused else "resume_deployment"
        path = f"/deployments/{self.read(ref).id}/{verb}"
        return self._call("POST", path, {}, DeploymentDefinition)

    def delete(self, ref: DeploymentRef) -> DeploymentDefinition:
        target = self.read(ref)
        self._call("DELETE", f"/deployments/{target.id}")
        return target

    def flows(self) -> list[FlowSummary]:
        return self._call("GET", "/flows", None, list[FlowSummary])

    def create_run(
        self, ref: DeploymentRef | DeploymentDefinition, request: CreateRun
    ) -> tuple[RunRow, bool]:
        target = ref if isinstance(ref, DeploymentDefinition) else self.read(ref)
        made = self._call("POST", f"/deployments/{target.id}/create_flow_run", request, CreatedRun)
        return made.run, made.created

    def read_run(self, flow_run_id: uuid.UUID) -> RunRow | None:
        return self._call("GET", f"/runner/flow_runs/{flow_run_id}", None, RunRow, missing_ok=True)

    def cancel_run(self, flow_run_id: uuid.UUID, message: str) -> RunRow | None:
        return self._call(
            "POST", f"/flow_runs/{flow_run_id}/cancel", {"message": message}, RunRow | None
        )

    def end_run(
        self, flow_run_id: uuid.UUID, state_type: StateType, state_name: str, message: str
    ) -> RunRow | None:
        body = EndRun(state_type=state_type, state_name=state_name, message=message)
        return self._call("POST", f"/runner/flow_runs/{flow_run_id}/end", body, RunRow | None)

    def _request(self, deployments: Iterable[DeploymentDefinition], **fields: Any) -> RunnerRequest:
        return RunnerRequest(deployment_ids=[d.id for d in deployments], **fields)

    def schedule(
        self, deployments: list[DeploymentDefinition], policy: runs.SchedulingPolicy
    ) -> int:
        return self._call(
            "POST", "/runner/schedule", self._request(deployments, policy=policy), int
        )

    def mark_late(self, deployments: list[DeploymentDefinition], after: datetime.timedelta) -> int:
        body = self._request(deployments, late_after_seconds=after.total_seconds())
        return self._call("POST", "/runner/mark_late", body, int)

    def claim(
        self, deployments: list[DeploymentDefinition], launcher: str, capacity: int
    ) -> list[Claim]:
        body = self._request(deployments, launcher=launcher, capacity=capacity)
        return self._call("POST", "/runner/claim", body, list[Claim])

    def next_due(self, deployments: list[DeploymentDefinition]) -> datetime.datetime | None:
        return self._call(
            "POST", "/runner/next_due", self._request(deployments), datetime.datetime | None
        )

    def runs_to_stop(self, launcher: str, run_ids: list[uuid.UUID]) -> list[RunRow]:
        body = RunnerRequest(deployment_ids=[], launcher=launcher, run_ids=run_ids)
        return self._call("POST", "/runner/to_stop", body, list[RunRow])

    def stamp(self) -> Any:
        return None  # a launcher on a server learns of changes from the feed instead


def _translated(exc: ApiError) -> Exception:
    """A refusal the server explains as a deployment problem reads as one here too."""
    text = str(exc)
    if "HTTP 404" in text:
        return DeploymentNotFound(text)
    if "HTTP 409" in text or "HTTP 422" in text:
        return DeploymentValidationError(text)
    return exc


_local = LocalBackend()


def get_backend(settings: Settings | None = None) -> Backend:
    """The server's deployments when ``HEADWATER_API_URL`` is set, else the local file's."""
    settings = settings or get_settings()
    if settings.api_url:
        return ApiBackend(settings)
    return _local
