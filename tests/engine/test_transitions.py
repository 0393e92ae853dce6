"""Transition records: their event JSON is exactly msgspec's encoding of the same Event."""

from __future__ import annotations

import datetime
import uuid
import zoneinfo
from typing import Any

import msgspec
import pytest

from headwater.engine.states import StateType
from headwater.engine.transitions import RunIdentity, StateSnapshot, TransitionRecord, jsonable
from headwater.events.schema import Event, events_decoder_hook
from headwater.ids import new_uuid

UTC = datetime.timezone.utc


def _state(snapshot: StateSnapshot) -> dict[str, Any]:
    state_id, state_type, name, message, timestamp = snapshot
    return {
        "id": str(state_id),
        "type": state_type.value,
        "name": name,
        "message": (message or "")[:100_000],
        "timestamp": timestamp.isoformat(),
    }


def _reference(record: TransitionRecord) -> bytes:
    """The event built from plain dicts and encoded by msgspec: what event_json must equal."""
    identity = record.identity
    current, previous = record.current, record.previous
    validated = _state(current)
    resource = {
        "headwater.resource.id": f"headwater.{identity.kind}.{identity.id}",
        "headwater.resource.name": identity.name,
        "headwater.run-count": str(record.run_count),
        "headwater.state-message": validated["message"],
        "headwater.state-name": validated["name"],
        "headwater.state-timestamp": validated["timestamp"],
        "headwater.state-type": validated["type"],
    }
    if identity.kind == "task-run":
        resource["headwater.orchestration"] = "client"
    if identity.kind == "flow-run":
        summary: dict[str, Any] = {
            "id": str(identity.id),
            "name": identity.name,
            "flow_name": identity.flow_name,
            "flow_version": identity.flow_version,
            "parent_flow_run_id": None
            if identity.parent_flow_run_id is None
            else str(identity.parent_flow_run_id),
            "parameters": jsonable(identity.parameters or {}),
            "tags": sorted(identity.tags),
            "pid": identity.summary()["pid"],
            "hostname": identity.summary()["hostname"],
        }
    else:
        summary = {
            "id": str(identity.id),
            "name": identity.name,
            "task_key": identity.task_key,
            "task_name": identity.task_name,
            "flow_run_id": None if identity.flow_run_id is None else str(identity.flow_run_id),
            "tags": sorted(identity.tags),
        }
    summary["run_count"] = record.run_count
    event = Event(
        occurred=current[4],
        event=f"headwater.{identity.kind}.{validated['name']}",
        resource=resource,  # type: ignore[arg-type]
        related=identity.related_resources(),  # type: ignore[arg-type]
        payload={
            "intended": {
                "from": None if previous is None else previous[1].value,
                "to": validated["type"],
            },
            "initial_state": None if previous is None else _state(previous),
            "validated_state": validated,
            "task_run" if identity.kind == "task-run" else "flow_run": summary,
        },
        id=current[0],
        follows=None if previous is None else previous[0],
    )
    # Event.__post_init__ makes a naive occurred UTC; the record keeps it as it came.
    event.occurred = current[4]
    return msgspec.json.encode(event)


class _Thing:
    def __repr__(self) -> str:
        return "Thing(7)"


FLOW_RUN = new_uuid()
IDENTITIES = [
    lambda: RunIdentity(
        "flow-run",
        FLOW_RUN,
        'odd "name" \\ caf\u00e9\n',
        "fl\u00f6w",
        parent_flow_run_id=new_uuid(),
        tags=("b", 'a"x'),
        flow_version="1.0",
        parameters={"x": 1, "items": [1, "\u2603"], "thing": _Thing()},
    ),
    lambda: RunIdentity("flow-run", FLOW_RUN, "plain", "etl"),
    lambda: RunIdentity(
        "task-run",
        new_uuid(),
        "load-1",
        "etl",
        flow_run_id=FLOW_RUN,
        flow_run_name='run "x"',
        task_key="load-1a2b",
        task_name="load",
        tags=("db", "etl"),
    ),
    lambda: RunIdentity("task-run", new_uuid(), "orphan", None),
]
TIMES = [
    datetime.datetime.now(UTC),
    datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),  # no microseconds
    datetime.datetime(2024, 1, 2, 3, 4, 5, 7, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
    datetime.datetime(2024, 1, 2, 3, 4, 5, 7, tzinfo=zoneinfo.ZoneInfo("UTC")),
    datetime.datetime(2024, 1, 2, 3, 4, 5, 7),  # naive
    datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(0, 30))),
]
MESSAGES = [None, "", 'boom "quoted" \\ \n\t \x01 \u2603', "x" * 100_010]
NAMES = ["Pending", "Running", "Completed", 'Odd "name" \u00e9', "AwaitingRetry"]


@pytest.mark.parametrize("make_identity", IDENTITIES)
@pytest.mark.parametrize("encode_every", [1, 2, 3])
def test_event_json_is_msgspecs_encoding_of_the_event(
    make_identity: Any, encode_every: int
) -> None:
    identity = make_identity()
    previous: StateSnapshot | None = None
    types = list(StateType)
    for index in range(12):
        current: StateSnapshot = (
            new_uuid(),
            types[index % len(types)],
            NAMES[index % len(NAMES)],
            MESSAGES[index % len(MESSAGES)],
            TIMES[index % len(TIMES)],
        )
        record = TransitionRecord(identity, index // 3, previous, current)
        # Skipping some records leaves the per-run cache of the previous state stale.
        if index % encode_every == 0:
            assert record.event_json() == _reference(record)
            decoded = msgspec.json.decode(
                _reference(record), type=Event, dec_hook=events_decoder_hook
            )
            assert record.to_event() == decoded
        previous = current


def test_sibling_task_runs_share_what_they_have_in_common() -> None:
    siblings = [IDENTITIES[2]() for _ in range(3)]
    assert siblings[0].related_index() == siblings[1].related_index() == siblings[2].related_index()
    for identity in siblings:
        summary = msgspec.json.decode(identity.summary_json(2))
        assert summary == {**identity.summary(), "run_count": 2}
        assert summary["id"] == str(identity.id)


def test_ids_are_canonical_text() -> None:
    identity = RunIdentity("task-run", uuid.UUID(int=255), "t", None)
    assert identity.id_text == str(uuid.UUID(int=255))
    assert identity.resource_id == f"headwater.task-run.{uuid.UUID(int=255)}"
