"""The exceptions headwater raises.

Every error headwater raises on its own account derives from :class:`HeadwaterError`;
a user's own exception is never wrapped: it becomes the run's Failed state and is
re-raised as the original object.

.. code-block:: text

    HeadwaterError
    ├── ParameterTypeError          a parameter does not match the signature or its type hint
    ├── ReservedArgumentError       a flow/task function declares return_state / wait_for
    ├── MissingContextError         run-only API used outside a flow or task run
    ├── UnfinishedRun               result() on a state that is not final
    │   └── PausedRun
    ├── MissingResult               a completed state carries no data
    ├── FailedRun                   raised for a Failed state that carries no exception
    ├── CrashedRun                  ... for a Crashed state
    ├── CancelledRun                ... for a Cancelled state
    ├── TaskRunTimeoutError         the exception stored in a task's TimedOut state
    ├── FlowRunTimeoutError         the exception stored in a flow's TimedOut state
    ├── MappingLengthMismatch       .map() iterables of different lengths
    ├── MappingMissingIterable      .map() without any iterable argument
    ├── FutureBlockedLoopError      a blocking future call on the loop that runs the task
    ├── EventError
    │   ├── InvalidEventError       an event that breaks the schema rules
    │   └── EventTooLarge           an event over the size limit
    ├── SettingsError               an environment variable with an unusable value
    └── StorageError                the database cannot be used
        ├── DatabaseUnavailableError  cannot be opened or written (permissions, disk full, locked)
        ├── DatabaseCorruptError      the file is not a headwater database, or is damaged
        ├── SchemaVersionError        written by a newer headwater than this one
        └── InvalidPageTokenError     a page token that this database did not issue
"""

from __future__ import annotations

from typing import Any


class HeadwaterError(Exception):
    """The root of every exception headwater raises on its own account."""


class ParameterTypeError(HeadwaterError, TypeError):
    """Raised when call arguments do not fit a flow's or task's signature or type hints.

    Attributes:
        callable_name: the flow or task the arguments were for.
        parameter: the offending parameter, or None when the binding itself failed.
        expected: a readable form of the expected type.
        value: the value that came.
    """

    def __init__(
        self,
        callable_name: str,
        parameter: str | None,
        detail: str,
        *,
        expected: str | None = None,
        value: Any = None,
    ) -> None:
        self.callable_name = callable_name
        self.parameter = parameter
        self.expected = expected
        self.value = value
        self.detail = detail
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.parameter is None:
            return f"Invalid arguments for {self.callable_name}: {self.detail}"
        value = _short_repr(self.value)
        return (
            f"Invalid parameter {self.parameter!r} for {self.callable_name}: expected "
            f"{self.expected}, got {value} ({self.detail})"
        )


class ReservedArgumentError(HeadwaterError, TypeError):
    """Raised when a flow or task function declares a parameter name the engine reserves."""


class MissingContextError(HeadwaterError, RuntimeError):
    """Raised when an API that needs a flow or task run is used outside of one."""


class UnfinishedRun(HeadwaterError):
    """Raised when the result of a state that is not final is requested."""


class PausedRun(UnfinishedRun):
    """Raised when the result of a paused run is requested."""


class MissingResult(HeadwaterError):
    """Raised when a completed state carries no result data."""


class FailedRun(HeadwaterError):
    """Raised for a Failed state whose data is not an exception (e.g. a hand-made Failed)."""


class CrashedRun(HeadwaterError):
    """Raised for a Crashed state whose data is not an exception."""


class CancelledRun(HeadwaterError):
    """Raised for a Cancelled state whose data is not an exception."""


class TaskRunTimeoutError(HeadwaterError, TimeoutError):
    """Raised for a task run that exceeded its ``timeout_seconds``; kept in its TimedOut state."""


class FlowRunTimeoutError(HeadwaterError, TimeoutError):
    """Raised for a flow run that exceeded its ``timeout_seconds``; kept in its TimedOut state."""


class MappingLengthMismatch(HeadwaterError, ValueError):
    """Raised when the iterable arguments of ``.map()`` have different lengths."""


class MappingMissingIterable(HeadwaterError, ValueError):
    """Raised when ``.map()`` is called without any iterable argument."""


class FutureBlockedLoopError(HeadwaterError, RuntimeError):
    """Raised when a blocking future method would block the event loop its task runs on."""


class EventError(HeadwaterError):
    """Base for errors about events."""


class InvalidEventError(EventError, ValueError):
    """Raised when an event breaks the schema rules (missing resource id, non-JSON payload...)."""


class EventTooLarge(EventError, ValueError):
    """Raised when a serialised event is larger than the allowed maximum."""

    def __init__(self, size: int, maximum: int) -> None:
        self.size = size
        self.maximum = maximum
        super().__init__(f"Event is {size} bytes once serialised; the maximum is {maximum} bytes")


class SettingsError(HeadwaterError, ValueError):
    """Raised when a ``HEADWATER_*`` environment variable holds a value that cannot be used."""


class StorageError(HeadwaterError):
    """Base for errors about the database; carries the file and the underlying cause.

    Attributes:
        path: the database file (or URL) concerned.
        cause: a short, readable reason.
    """

    def __init__(self, path: str, cause: str) -> None:
        self.path = path
        self.cause = cause
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"headwater database {self.path}: {self.cause}"


class DatabaseUnavailableError(StorageError):
    """Raised when the database file cannot be opened or written (permissions, read-only
    directory, disk full, or locked by another process for longer than the busy timeout)."""


class DatabaseCorruptError(StorageError):
    """Raised when the file exists but is not a SQLite database, or SQLite reports damage."""


class SchemaVersionError(StorageError):
    """Raised when the database was written by a newer headwater (its schema version is
    higher than the newest this version knows); the file is left untouched.

    Attributes:
        found: the schema version in the file.
        supported: the newest schema version this headwater knows.
    """

    def __init__(self, path: str, found: int, supported: int) -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            path,
            f"schema version {found} is newer than the newest this headwater supports "
            f"({supported}); upgrade headwater, or point HEADWATER_DATABASE_URL elsewhere",
        )


class InvalidPageTokenError(StorageError, ValueError):
    """Raised when a page token given to a query is malformed or was not issued by it."""


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
