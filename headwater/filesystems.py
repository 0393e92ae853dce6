"""Result storage locations (``prefect.filesystems`` in Prefect): a directory or an fsspec URL.

Example:
    ``@task(result_storage=RemoteFileSystem("s3://bucket/results"))``
"""

from headwater.engine.result_storage import LocalFileSystem, RemoteFileSystem

__all__ = ["LocalFileSystem", "RemoteFileSystem"]
