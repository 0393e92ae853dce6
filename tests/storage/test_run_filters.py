"""The run filters carry exactly the readers' keywords, and refuse what the readers would."""

from __future__ import annotations

import datetime
import inspect
import uuid

import pytest

from headwater.storage import queries
from headwater.storage.run_filters import (
    FlowRunFilter,
    LogFilter,
    TaskRunFilter,
    filter_from,
)


@pytest.mark.parametrize(
    ("kind", "reader"),
    [
        (FlowRunFilter, queries.read_flow_runs),
        (TaskRunFilter, queries.read_task_runs),
        (LogFilter, queries.read_logs),
    ],
)
def test_a_filter_has_the_readers_keywords_one_for_one(kind: type, reader: object) -> None:
    keywords = [
        name
        for name, parameter in inspect.signature(reader).parameters.items()  # type: ignore[arg-type]
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    assert sorted(keywords) == sorted(kind.__struct_fields__)


def test_filter_from_takes_the_readers_shorthands() -> None:
    since = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    run_id = uuid.uuid4()
    found = filter_from(
        TaskRunFilter, {"state_type": "FAILED", "since": since, "flow_run_id": run_id}
    )
    assert found.state_type == ["FAILED"] and found.since == since
    assert found.flow_run_id == run_id and found.limit == 50


def test_filter_from_names_an_unknown_keyword_or_a_bad_value() -> None:
    with pytest.raises(TypeError, match="FlowRunFilter has no field.*flow_nmae"):
        filter_from(FlowRunFilter, {"flow_nmae": ["etl"]})
    with pytest.raises(ValueError, match="state_type"):
        filter_from(FlowRunFilter, {"state_type": ["EXPLODED"]})
    with pytest.raises(ValueError, match="limit"):
        filter_from(FlowRunFilter, {"limit": 5000})
