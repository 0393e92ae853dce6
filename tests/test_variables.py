"""Variables: named JSON values with Prefect's rules, stored in the database, with events."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import EventLog

from headwater.events import get_bus
from headwater.exceptions import VariableError
from headwater.settings import temporary_settings
from headwater.variables import Variable


@pytest.fixture(autouse=True)
def home(tmp_path: Path) -> Iterator[Path]:
    with temporary_settings(home=tmp_path, database_url=None):
        yield tmp_path
    get_bus().flush(timeout=10)


def test_set_get_unset() -> None:
    assert Variable.get("region") is None
    assert Variable.get("region", default="us-east-1") == "us-east-1"
    created = Variable.set("region", "eu-west-1", tags=["infra"])
    assert created == Variable(name="region", value="eu-west-1", tags=["infra"])
    assert Variable.get("region") == "eu-west-1"
    assert Variable.unset("region") is True
    assert Variable.unset("region") is False
    assert Variable.get("region", default=0) == 0


@pytest.mark.parametrize("value", [1, 2.5, True, None, [1, "a"], {"a": {"b": [None]}}, ""])
def test_any_json_value_round_trips(value: object) -> None:
    Variable.set("v", value)
    assert Variable.get("v", default="missing") == value


def test_an_existing_variable_needs_overwrite() -> None:
    Variable.set("v", 1)
    with pytest.raises(ValueError, match="variable 'v' already exists; pass overwrite=True"):
        Variable.set("v", 2)
    assert Variable.get("v") == 1
    Variable.set("v", 2, overwrite=True)
    assert Variable.get("v") == 2


@pytest.mark.parametrize("name", ["", "UPPER", "has space", "dot.ted", "é", "a" * 256])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(VariableError, match="is not a valid variable name"):
        Variable.set(name, 1)
    with pytest.raises(VariableError):
        Variable.get(name)


def test_longest_name_and_value_are_accepted() -> None:
    name = "a_-9" * 63 + "abc"
    assert len(name) == 255
    value = "x" * 4998  # 5000 characters once serialised, with the quotes
    Variable.set(name, value)
    assert Variable.get(name) == value


def test_values_over_the_limit_or_not_json_are_refused() -> None:
    with pytest.raises(VariableError, match=r"variable 'big' is 5001 characters .* limit is 5000"):
        Variable.set("big", "x" * 4999)
    with pytest.raises(VariableError, match="variable 'obj' is not JSON-serialisable"):
        Variable.set("obj", object())
    with pytest.raises(VariableError, match="tags of variable 't' must be a list of strings"):
        Variable.set("t", 1, tags="prod")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_async_twins() -> None:
    assert await Variable.aget("a", default=5) == 5
    await Variable.aset("a", {"k": 1})
    with pytest.raises(VariableError):
        await Variable.aset("a", 2)
    await Variable.aset("a", 2, overwrite=True)
    assert await Variable.aget("a") == 2
    assert await Variable.aunset("a") is True
    assert await Variable.aunset("a") is False


def test_changes_are_events(events: EventLog) -> None:
    Variable.set("region", "eu", tags=["infra"])
    Variable.set("region", "us", overwrite=True)
    Variable.unset("region")
    get_bus().flush(timeout=10)
    mine = [e for e in events if e.event.startswith("headwater.variable.")]
    assert [e.event for e in mine] == [
        "headwater.variable.created",
        "headwater.variable.updated",
        "headwater.variable.deleted",
    ]
    assert len({e.resource_id for e in mine}) == 1
    assert mine[0].resource_id.startswith("headwater.variable.")
    assert all(e.resource.name == "region" for e in mine)
    assert mine[0].payload == {"name": "region", "tags": ["infra"]}
