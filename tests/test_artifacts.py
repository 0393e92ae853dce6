"""Artifacts: created in runs, stored with them, announced by events, listed by the CLI."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import EventLog

from headwater import flow, task
from headwater.artifacts import (
    Artifact,
    acreate_image_artifact,
    acreate_link_artifact,
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
    create_image_artifact,
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from headwater.cli.app import cli
from headwater.events import get_bus
from headwater.exceptions import ArtifactNotFound, ArtifactProgressWarning, InvalidArtifactError
from headwater.settings import temporary_settings


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    with temporary_settings(home=tmp_path, database_url=None):
        yield tmp_path


def test_artifacts_are_stored_with_their_runs(home: Path) -> None:
    @task
    def summarise() -> uuid.UUID:
        return create_table_artifact([{"a": 1}, {"a": 2}], key="rows")

    @flow
    def report() -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
        return create_markdown_artifact("# Report", key="report"), summarise(), uuid.uuid4()

    markdown_id, table_id, _ = report()
    markdown = Artifact.get("report")
    table = Artifact.get("rows")
    assert markdown is not None and table is not None
    assert (markdown.id, markdown.type, markdown.data) == (markdown_id, "markdown", "# Report")
    assert markdown.flow_run_id is not None and markdown.task_run_id is None
    assert table.id == table_id and table.task_run_id is not None
    assert table.flow_run_id == markdown.flow_run_id
    assert json.loads(table.data) == [{"a": 1}, {"a": 2}]


def test_outside_a_run_an_artifact_has_no_run(home: Path) -> None:
    create_image_artifact("https://example.com/a.png", key="picture", description="a *cat*")
    found = Artifact.get("picture")
    assert found is not None
    assert (found.type, found.data, found.description) == (
        "image",
        "https://example.com/a.png",
        "a *cat*",
    )
    assert found.flow_run_id is None and found.task_run_id is None


def test_a_key_points_at_its_newest_version(home: Path) -> None:
    create_markdown_artifact("one", key="notes")
    newest = create_markdown_artifact("two", key="notes")
    found = Artifact.get("notes")
    assert found is not None and (found.id, found.data) == (newest, "two")
    assert Artifact.get("missing") is None


@pytest.mark.parametrize(
    "table",
    [
        {"x": [1.0, math.nan], "y": ["a", "b"]},
        [{"x": 1.0, "y": "a"}, {"x": math.nan, "y": "b"}],
        [[1.0, "a"], [math.nan, "b"]],
    ],
)
def test_tables_in_every_shape_with_nan_as_null(home: Path, table: object) -> None:
    create_table_artifact(table, key="t")
    found = Artifact.get("t")
    assert found is not None
    assert "NaN" not in found.data and "null" in found.data
    assert json.loads(found.data) is not None


@pytest.mark.parametrize("table", ["text", 42, {"x": 1}, [{"a": 1}, [1]], [1, 2]], ids=repr)
def test_things_that_are_not_tables_are_refused(home: Path, table: object) -> None:
    with pytest.raises(InvalidArtifactError):
        create_table_artifact(table)


def test_links_read_as_markdown(home: Path) -> None:
    create_link_artifact("https://example.com", "Example", key="with-text")
    create_link_artifact("https://example.com", key="bare")
    assert Artifact.get("with-text").data == "[Example](https://example.com)"  # type: ignore[union-attr]
    assert Artifact.get("bare").data == "[https://example.com](https://example.com)"  # type: ignore[union-attr]


def test_progress_is_updated_in_place(home: Path) -> None:
    artifact_id = create_progress_artifact(10, key="load")
    assert update_progress_artifact(artifact_id, 55.5, description="half") == artifact_id
    found = Artifact.get("load")
    assert found is not None and (found.data, found.description) == (55.5, "half")
    assert found.updated > found.created


def test_progress_out_of_range_is_clamped_with_a_warning(home: Path) -> None:
    with pytest.warns(ArtifactProgressWarning, match="clamped to 100"):
        artifact_id = create_progress_artifact(150, key="over")
    with pytest.warns(ArtifactProgressWarning, match="clamped to 0"):
        update_progress_artifact(artifact_id, -3)
    assert Artifact.get("over").data == 0.0  # type: ignore[union-attr]


@pytest.mark.parametrize("progress", ["50", None, math.nan, True])
def test_progress_must_be_a_number(home: Path, progress: object) -> None:
    with pytest.raises(InvalidArtifactError, match="progress"):
        create_progress_artifact(progress)  # type: ignore[arg-type]


def test_updating_needs_a_stored_progress_artifact(home: Path) -> None:
    with pytest.raises(ArtifactNotFound):
        update_progress_artifact(uuid.uuid4(), 5)
    markdown = create_markdown_artifact("x")
    with pytest.raises(InvalidArtifactError, match="markdown"):
        update_progress_artifact(markdown, 5)
    with pytest.raises(InvalidArtifactError):
        update_progress_artifact("not-an-id", 5)


@pytest.mark.parametrize("key", ["Upper", "under_score", "sp ace", "", "dot.ted", 7])
def test_bad_keys_are_refused_by_name(home: Path, key: object) -> None:
    with pytest.raises(ValueError, match="key") as caught:
        create_markdown_artifact("x", key=key)  # type: ignore[arg-type]
    assert repr(key) in str(caught.value)


def test_created_and_updated_events(home: Path, events: EventLog) -> None:
    @flow
    def run() -> uuid.UUID:
        artifact_id = create_progress_artifact(1, key="steps")
        update_progress_artifact(artifact_id, 2)
        return artifact_id

    artifact_id = run()
    get_bus().flush(timeout=10)
    resource_id = f"headwater.artifact.{artifact_id}"
    mine = events.for_resource(resource_id)
    assert [event.event for event in mine] == [
        "headwater.artifact.created",
        "headwater.artifact.updated",
    ]
    roles = {related.role for related in mine[0].related}
    assert {"flow-run", "artifact-collection"} <= roles
    assert mine[0].resource["headwater.artifact.type"] == "progress"
    assert mine[1].payload["progress"] == 2.0


@pytest.mark.anyio
async def test_async_twins(home: Path) -> None:
    @flow
    async def run() -> list[uuid.UUID]:
        progress = await acreate_progress_artifact(5, key="a-progress")
        await aupdate_progress_artifact(progress, 6)
        return [
            await acreate_markdown_artifact("m", key="a-markdown"),
            await acreate_table_artifact({"c": [1]}, key="a-table"),
            await acreate_link_artifact("https://x.org", key="a-link"),
            await acreate_image_artifact("https://x.org/i.png", key="a-image"),
            progress,
        ]

    ids = await run()
    keys = ["a-markdown", "a-table", "a-link", "a-image", "a-progress"]
    found = [await Artifact.aget(key) for key in keys]
    assert [item.id for item in found if item] == ids
    assert all(item and item.flow_run_id is not None for item in found)
    assert found[-1].data == 6.0  # type: ignore[union-attr]


def test_cli_lists_and_inspects(home: Path) -> None:
    @flow
    def run() -> None:
        create_markdown_artifact("first", key="daily")
        create_markdown_artifact("second", key="daily")
        create_link_artifact("https://example.com")

    run()
    runner = CliRunner()
    result = runner.invoke(cli, ["artifact", "ls"], catch_exceptions=False)
    assert result.exit_code == 0 and "daily" in result.output and "link" in result.output
    result = runner.invoke(cli, ["artifact", "ls", "--key", "daily", "-o", "json"])
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [row["data"] for row in rows] == ["second", "first"]
    flow_run_id = rows[0]["flow_run_id"]
    result = runner.invoke(cli, ["artifact", "ls", "--flow-run", flow_run_id[:8], "-o", "json"])
    assert len(result.output.splitlines()) == 3
    result = runner.invoke(cli, ["artifact", "ls", "--flow-run", str(uuid.uuid4()), "-o", "json"])
    assert result.output == ""
    result = runner.invoke(cli, ["artifact", "inspect", "daily"])
    assert result.exit_code == 0 and result.output.index("second") < result.output.index("first")
    result = runner.invoke(cli, ["artifact", "inspect", "nope"])
    assert result.exit_code == 2 and "'nope'" in result.output
    result = runner.invoke(cli, ["artifact", "ls", "--key", "Bad Key"])
    assert result.exit_code == 2
