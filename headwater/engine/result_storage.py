"""Where persisted results live: a local directory, or any fsspec URL (``s3://bucket/prefix``).

Every write is atomic: a reader in any process sees the whole record or none. Locally the
record is written to a temporary file in the same directory and renamed over the key
(``os.replace``). On an object store (S3, GCS, Azure) one PUT is atomic already: an object
becomes visible only once fully uploaded, so the complete bytes are uploaded in one call. On
other fsspec filesystems the bytes go to a temporary key that is then moved over the key.

fsspec is optional: it is imported when a URL needs it, and a missing package is named in
the error together with the URL that asked for it.

Each storage also keeps a run-id index (``.runs/<run id>`` → storage key), so a result can
be read by the id of the run that made it, from any process.
"""

from __future__ import annotations

import functools
import io
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from headwater.engine.locking import FileSystemLockManager
from headwater.exceptions import ResultStorageError

__all__ = ["LocalFileSystem", "RemoteFileSystem", "ResultStorage", "resolve_storage"]

BodyWriter = Callable[[IO[bytes]], None]
RUNS_DIR = ".runs"
LOCKS_DIR = ".locks"
_OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss"})
_DRIVERS = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs"}
_DRIVERS.update({"abfs": "adlfs", "abfss": "adlfs", "sftp": "paramiko", "ssh": "paramiko"})


class ResultStorage:
    """A place to keep result records by key; see the module docstring for the guarantees.

    Attributes:
        blocking: True when calls do network I/O (async code runs them in a worker thread).
    """

    blocking = False
    location = ""

    def read(self, key: str) -> bytes | None:
        """The record stored under ``key``, or None."""
        raise NotImplementedError

    def write(self, key: str, body: BodyWriter) -> None:
        """Store what ``body`` writes under ``key``, atomically, replacing any record."""
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def link_run(self, run_id: str, key: str) -> None:
        """Record that run ``run_id``'s result is stored under ``key``."""
        raise NotImplementedError

    def run_key(self, run_id: str) -> str | None:
        """The storage key of run ``run_id``'s result, if it was linked."""
        raise NotImplementedError

    def lock_manager(self) -> FileSystemLockManager:
        """The lock manager SERIALIZABLE transactions on this storage use by default."""
        from headwater.settings import get_settings

        return lock_manager_for(get_settings().home / "storage" / LOCKS_DIR)


def check_key(key: str) -> str:
    """Refuse keys that would escape the storage or collide with its own folders."""
    parts = key.replace("\\", "/").split("/")
    if (
        not key
        or "\x00" in key
        or key.startswith(("/", "\\"))
        or ".." in parts
        or parts[0] in (RUNS_DIR, LOCKS_DIR)
        or (len(key) > 1 and key[1] == ":")
    ):
        raise ResultStorageError(
            f"invalid result storage key {key!r}: it must be a relative path without '..', "
            f"not starting with {RUNS_DIR!r} or {LOCKS_DIR!r}"
        )
    return key


class LocalFileSystem(ResultStorage):
    """Records as files under a local directory (Prefect's ``LocalFileSystem`` block).

    Args:
        basepath: the directory; created on first write.
    """

    def __init__(self, basepath: str | os.PathLike[str]) -> None:
        self.basepath = Path(basepath).expanduser().absolute()
        self.location = str(self.basepath)
        self._made: set[str] = set()

    # plain strings rather than pathlib: a cache hit is a handful of these calls
    def _path(self, key: str) -> str:
        return os.path.join(self.location, check_key(key))

    def _ensure_dir(self, directory: str) -> None:
        if directory not in self._made:
            os.makedirs(directory, exist_ok=True)
            self._made.add(directory)

    def read(self, key: str) -> bytes | None:
        try:
            with open(self._path(key), "rb") as file:
                return file.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def write(self, key: str, body: BodyWriter) -> None:
        path = self._path(key)
        directory, name = os.path.split(path)
        self._ensure_dir(directory)
        temporary = os.path.join(directory, f".{name}.{uuid.uuid4().hex}.tmp")
        try:
            file = open(temporary, "xb")  # noqa: SIM115 - closed below, before the rename
        except FileNotFoundError:  # the directory was removed since: make it again
            self._made.discard(directory)
            self._ensure_dir(directory)
            file = open(temporary, "xb")  # noqa: SIM115
        try:
            with file:
                body(file)
            os.replace(temporary, path)
        except BaseException:
            try:
                os.unlink(temporary)
            except FileNotFoundError:
                pass
            raise

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._path(key))

    def delete(self, key: str) -> None:
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            pass

    def link_run(self, run_id: str, key: str) -> None:
        # a symlink whose target text is the key: created atomically in one system call
        directory = os.path.join(self.location, RUNS_DIR)
        link = os.path.join(directory, run_id)
        self._ensure_dir(directory)
        try:
            os.symlink(key, link)
        except FileExistsError:
            os.unlink(link)
            os.symlink(key, link)
        except FileNotFoundError:  # the directory was removed since
            self._made.discard(directory)
            self._ensure_dir(directory)
            os.symlink(key, link)
        except OSError:  # pragma: no cover - no symlinks (Windows without the privilege)

            def body(file: IO[bytes]) -> None:
                file.write(key.encode())

            self.write(f"{RUNS_DIR}-{run_id}", body)

    def run_key(self, run_id: str) -> str | None:
        try:
            return os.readlink(os.path.join(self.location, RUNS_DIR, run_id))
        except OSError:
            data = self.read(f"{RUNS_DIR}-{run_id}")
            return None if data is None else data.decode()

    def lock_manager(self) -> FileSystemLockManager:
        return lock_manager_for(self.basepath / LOCKS_DIR)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalFileSystem) and other.basepath == self.basepath

    def __hash__(self) -> int:
        return hash(self.basepath)

    def __repr__(self) -> str:
        return f"LocalFileSystem({self.location!r})"


class RemoteFileSystem(ResultStorage):
    """Records under an fsspec URL (Prefect's ``RemoteFileSystem`` block).

    Args:
        basepath: e.g. ``"s3://bucket/prefix"``, ``"gcs://bucket"``, ``"memory://results"``.
        settings: keyword arguments for the fsspec filesystem (credentials, endpoint...).
    """

    blocking = True

    def __init__(self, basepath: str, settings: dict[str, Any] | None = None) -> None:
        self.basepath = basepath.rstrip("/")
        self.settings = dict(settings or {})
        self.location = self.basepath
        self.protocol = self.basepath.split("://", 1)[0].lower()
        self._fs: Any = None
        self._root = ""

    @property
    def filesystem(self) -> Any:
        """The fsspec filesystem, created on first use."""
        if self._fs is None:
            self._fs, self._root = _open_fsspec(self.basepath, self.settings)
        return self._fs

    def _path(self, key: str) -> str:
        fs = self.filesystem
        return f"{self._root.rstrip('/')}/{check_key(key)}" if fs is not None else key

    def read(self, key: str) -> bytes | None:
        try:
            return self.filesystem.cat_file(self._path(key))  # type: ignore[no-any-return]
        except (FileNotFoundError, IsADirectoryError):
            return None

    def write(self, key: str, body: BodyWriter) -> None:
        buffer = io.BytesIO()
        body(buffer)  # a serializer failure happens here, before any byte is sent
        self._put(self._path(key), buffer.getvalue())

    def _put(self, path: str, data: bytes) -> None:
        fs = self.filesystem
        if self.protocol in _OBJECT_STORES:
            fs.pipe_file(path, data)
            return
        temporary = f"{path}.{uuid.uuid4().hex}.tmp"
        fs.pipe_file(temporary, data)
        fs.mv(temporary, path)

    def exists(self, key: str) -> bool:
        return bool(self.filesystem.exists(self._path(key)))

    def delete(self, key: str) -> None:
        try:
            self.filesystem.rm_file(self._path(key))
        except FileNotFoundError:
            pass

    def link_run(self, run_id: str, key: str) -> None:
        self._put(f"{self._root.rstrip('/')}/{RUNS_DIR}/{run_id}", key.encode())

    def run_key(self, run_id: str) -> str | None:
        try:
            data = self.filesystem.cat_file(f"{self._root.rstrip('/')}/{RUNS_DIR}/{run_id}")
        except FileNotFoundError:
            return None
        return data.decode()  # type: ignore[no-any-return]

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, RemoteFileSystem)
            and other.basepath == self.basepath
            and other.settings == self.settings
        )

    def __hash__(self) -> int:
        return hash(self.basepath)

    def __repr__(self) -> str:
        return f"RemoteFileSystem({self.basepath!r})"


def _open_fsspec(url: str, settings: dict[str, Any]) -> tuple[Any, str]:
    protocol = url.split("://", 1)[0].lower()
    driver = _DRIVERS.get(protocol)
    install = f"fsspec {driver}" if driver else "fsspec"
    try:
        import fsspec.core
    except ImportError:
        raise ResultStorageError(
            f"result storage {url!r} needs the fsspec package: pip install {install}"
        ) from None
    try:
        fs, root = fsspec.core.url_to_fs(url, **settings)
    except ImportError as exc:
        raise ResultStorageError(
            f"result storage {url!r} needs a driver fsspec could not import ({exc}): "
            f"pip install {install}"
        ) from None
    except ValueError as exc:
        raise ResultStorageError(f"result storage {url!r} cannot be used: {exc}") from None
    return fs, root


@functools.lru_cache(maxsize=64)
def lock_manager_for(directory: Path) -> FileSystemLockManager:
    """One lock manager per directory, so every store of a process shares its waiters."""
    return FileSystemLockManager(directory)


@functools.lru_cache(maxsize=64)
def _from_text(spec: str) -> ResultStorage:
    if "://" in spec:
        protocol, rest = spec.split("://", 1)
        if protocol.lower() in ("file", "local"):
            return LocalFileSystem(rest)
        return RemoteFileSystem(spec)
    return LocalFileSystem(spec)


def resolve_storage(spec: Any = None) -> ResultStorage:
    """The storage named by ``spec``: a storage object, a path, or a URL; None = the default.

    The default is ``HEADWATER_RESULTS_DEFAULT_STORAGE``, else ``<HEADWATER_HOME>/storage``.
    Equal specs give the same object, so stores share their caches and lock waiters.

    Raises:
        TypeError: ``spec`` is none of those.
    """
    if isinstance(spec, ResultStorage):
        return spec
    if spec is None:
        from headwater.settings import get_settings

        settings = get_settings()
        spec = settings.results_default_storage or str(settings.home / "storage")
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if isinstance(spec, str):
        return _from_text(spec)
    raise TypeError(
        "result_storage must be a path, an fsspec URL such as 's3://bucket/prefix', or a "
        f"LocalFileSystem/RemoteFileSystem, got {type(spec).__name__}"
    )
