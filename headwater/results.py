"""Persisted results (``prefect.results`` in Prefect), and reading them from any process.

Example:
    ``read_result(task_run_id)`` returns the value a persisted task run produced.
"""

from headwater.engine.result_storage import LocalFileSystem, RemoteFileSystem
from headwater.engine.results import (
    PersistedResult,
    ResultRecord,
    ResultRecordMetadata,
    ResultStore,
    get_default_persist_setting,
    get_default_result_serializer,
    get_default_result_storage,
    read_result,
)

__all__ = [
    "LocalFileSystem",
    "PersistedResult",
    "RemoteFileSystem",
    "ResultRecord",
    "ResultRecordMetadata",
    "ResultStore",
    "get_default_persist_setting",
    "get_default_result_serializer",
    "get_default_result_storage",
    "read_result",
]
