"""Sync-compatible calls: values in sync code, awaitables in async code (Prefect's rule)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater import flow, task
from headwater.artifacts import Artifact, create_markdown_artifact
from headwater.blocks.system import Secret
from headwater.events import get_bus
from headwater.settings import temporary_settings
from headwater.variables import Variable


@pytest.fixture(autouse=True)
def home(tmp_path: Path) -> Iterator[Path]:
    with temporary_settings(home=tmp_path, database_url=None):
        yield tmp_path
    get_bus().flush(timeout=10)


def test_prefect_style_awaits_in_an_async_flow() -> None:
    @flow
    async def configure() -> tuple[str, str, bool]:
        await Variable.set("region", "eu", overwrite=True)
        region = await Variable.get("region")
        await Secret(value="s3cret").save("api", overwrite=True)
        secret = await Secret.load("api")
        await create_markdown_artifact("# done", key="report")
        removed = await Variable.unset("region")
        return region, secret.get(), removed

    assert asyncio.run(configure()) == ("eu", "s3cret", True)
    assert Artifact.get("report") is not None


def test_the_same_names_return_values_in_sync_code_even_under_an_async_flow() -> None:
    @task
    def read_region() -> str:  # a sync task: runs in a worker thread, sync rules
        return Variable.get("region", default="none")

    @flow
    async def outer() -> str:
        return await read_region.submit()

    Variable.set("region", "us")
    assert Variable.get("region") == "us"
    assert asyncio.run(outer()) == "us"


def test_outside_any_run_a_running_loop_decides() -> None:
    Variable.set("n", 1)

    async def main() -> int:
        return await Variable.get("n")

    assert asyncio.run(main()) == 1
    assert Variable.get("n") == 1


def test_state_result_is_awaited_in_async_code_and_plain_in_sync_code() -> None:
    @flow
    def sync_flow() -> int:
        return 7

    @flow
    async def async_flow() -> int:
        state = sync_flow(return_state=True)  # a sync subflow: its state, in async code
        return await state.result()

    assert sync_flow(return_state=True).result() == 7
    assert asyncio.run(async_flow()) == 7

    async def outside_a_run() -> int:
        state = await async_flow(return_state=True)
        return await state.result()

    assert asyncio.run(outside_a_run()) == 7
