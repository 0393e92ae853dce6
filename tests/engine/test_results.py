"""Persisted results: records on disk (and S3), atomic writes, lazy loading, other processes."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from results_helpers import run_script

from headwater import flow, task
from headwater.exceptions import ResultNotFound, ResultStorageError, SerializationError
from headwater.results import (
    LocalFileSystem,
    PersistedResult,
    RemoteFileSystem,
    ResultStore,
    read_result,
)
from headwater.serializers import JSONSerializer, Serializer
from headwater.settings import temporary_settings


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    with temporary_settings(home=tmp_path, database_url=None):
        yield tmp_path


def _files(directory: Path) -> list[str]:
    if not directory.exists():
        return []
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*"))


def test_persisted_result_is_a_record_readable_by_run_id(home: Path) -> None:
    @task(persist_result=True)
    def make(x: int) -> dict[str, int]:
        return {"x": x}

    state = make(3, return_state=True)
    run_id = state.state_details.task_run_id
    assert state.result() == {"x": 3}
    assert read_result(run_id) == {"x": 3}
    assert read_result(str(run_id)) == {"x": 3}
    # persist_result=True alone gets Prefect's DEFAULT policy: the record is under its key
    key = state.state_details.cache_key
    header = (home / "storage" / key).read_bytes().split(b"\n", 1)[0]
    assert b'"serializer":"pickle"' in header and str(run_id).encode() in header


def test_results_not_persisted_leave_nothing_behind(home: Path) -> None:
    @task
    def plain(x: int) -> int:
        return x

    @flow
    def pipeline() -> int:
        return plain(1) + plain(1)

    assert pipeline() == 2
    assert not (home / "storage").exists()


def test_persist_by_default_setting_persists_and_applies_the_default_policy(home: Path) -> None:
    calls: list[int] = []

    @task
    def work(x: int) -> int:
        calls.append(x)
        return x * 10

    @flow
    def pipeline() -> list[str]:
        return [work(1, return_state=True).name, work(1, return_state=True).name]

    with temporary_settings(results_persist_by_default=True):
        assert pipeline() == ["Completed", "Cached"]  # DEFAULT: inputs + source + run id
    assert calls == [1]


def test_not_in_memory_state_loads_the_value_lazily(home: Path) -> None:
    @task(persist_result=True, cache_result_in_memory=False)
    def make() -> list[int]:
        return [1, 2, 3]

    state = make(return_state=True)
    assert isinstance(state.data, PersistedResult)
    assert state.result() == [1, 2, 3]
    assert make() == [1, 2, 3]


def test_lazy_result_retries_until_the_record_appears(home: Path) -> None:
    store = ResultStore()
    state_meta = store.write("late", "v1")
    store.result_storage.delete("late")
    lazy = PersistedResult(state_meta, store)
    with pytest.raises(ResultNotFound):
        lazy.get(retry=False)
    writer = threading.Timer(0.3, lambda: store.write("late", "v2"))
    writer.start()
    try:
        assert lazy.get() == "v2"
    finally:
        writer.join()


def test_json_serializer_and_result_storage_key_template(home: Path) -> None:
    @task(result_serializer="json", result_storage_key="report-{parameters[day]}")
    def report(day: str) -> dict[str, str]:
        return {"day": day}

    assert report("mon") == {"day": "mon"}
    record = (home / "storage" / "report-mon").read_bytes()
    assert record.split(b"\n", 1)[1] == b'{"day":"mon"}'
    assert report("mon", return_state=True).name == "Cached"  # the storage key is the key


def test_flow_result_is_persisted_under_its_run_id_and_tasks_inherit(home: Path) -> None:
    storage = home / "flow-results"

    @task
    def inner() -> int:
        return 7

    @flow(persist_result=True, result_storage=storage, result_serializer=JSONSerializer())
    def outer() -> int:
        inner_state = inner(return_state=True)
        assert read_result(inner_state.state_details.task_run_id, storage) == 7
        return inner_state.result() + 1

    state = outer(return_state=True)
    assert read_result(state.state_details.flow_run_id, result_storage=storage) == 8


class _FailingHalfway(Serializer):
    """Writes part of the payload, then fails: what a crash mid-write looks like."""

    type = "halfway"

    def dump(self, obj: Any, file: IO[bytes]) -> None:
        file.write(b"partial bytes")
        raise RuntimeError("disk on fire")


def test_a_write_failing_midway_leaves_no_partial_record(home: Path) -> None:
    storage = LocalFileSystem(home / "atomic")
    good = ResultStore(storage)
    good.write("key", "old value")
    with pytest.raises(SerializationError, match="disk on fire"):
        ResultStore(storage, serializer=_FailingHalfway()).write("key", "new value")
    assert good.read("key").result == "old value"
    assert _files(home / "atomic") == ["key"]  # no temporary file left behind


def test_a_task_whose_result_cannot_be_serialized_completes_unpersisted(home: Path) -> None:
    @task(result_serializer=_FailingHalfway(), result_storage=home / "atomic")
    def make() -> str:
        return "value"

    state = make(return_state=True)
    assert state.is_completed() and state.result() == "value"
    assert _files(home / "atomic") == []


def test_read_result_of_a_task_run_in_another_process(home: Path) -> None:
    run_id = run_script(
        """
        from headwater import flow, task

        @task(persist_result=True)
        def make(x):
            return {"made by": "child", "x": x}

        @flow
        def pipeline():
            return make(5, return_state=True).state_details.task_run_id

        print(pipeline())
        """,
        home,
    )
    assert read_result(run_id) == {"made by": "child", "x": 5}
    with pytest.raises(ResultNotFound):
        read_result("00000000-0000-0000-0000-000000000000")


def test_unknown_serializer_and_bad_keys_are_refused(home: Path) -> None:
    with pytest.raises(ValueError, match="unknown result serializer"):
        task(result_serializer="yaml")(lambda: None)
    with pytest.raises(ResultStorageError, match="invalid result storage key"):
        ResultStore(home).write("../escape", 1)


def test_a_missing_fsspec_package_is_named_with_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fsspec", None)
    monkeypatch.setitem(sys.modules, "fsspec.core", None)
    storage = RemoteFileSystem("s3://bucket/results")
    with pytest.raises(ResultStorageError, match=r"s3://bucket/results.*pip install fsspec s3fs"):
        storage.read("key")


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    moto_server = pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_results_on_s3(home: Path, s3_endpoint: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="results")
    storage = RemoteFileSystem(
        "s3://results/runs", settings={"client_kwargs": {"endpoint_url": s3_endpoint}}
    )
    calls: list[int] = []

    @task(result_storage=storage, cache_key_fn=lambda context, parameters: f"sq-{parameters['x']}")
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    first = square(4, return_state=True)
    second = square(4, return_state=True)
    assert (first.name, second.name, calls) == ("Completed", "Cached", [4])
    assert read_result("sq-4", result_storage=storage) == 16
    assert read_result(first.state_details.task_run_id, result_storage=storage) == 16
    assert storage.filesystem.ls("results/runs/")  # the record really is in the bucket


def test_an_unreadable_record_is_recomputed_not_a_crash(home: Path) -> None:
    @task(cache_key_fn=lambda context, parameters: "corrupt")
    def make() -> str:
        return "fresh"

    ResultStore().write("corrupt", "stale")
    path = home / "storage" / "corrupt"
    path.write_bytes(path.read_bytes().split(b"\n", 1)[0] + b"\nnot a pickle")
    assert make(return_state=True).name == "Completed"
    assert make(return_state=True).name == "Cached" and make() == "fresh"
