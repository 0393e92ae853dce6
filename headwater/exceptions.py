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
    ├── WebhookError                a webhook definition that cannot be used (slug, template)
    │   └── WebhookExistsError      a webhook with that slug already exists
    ├── ApiError                    the server (HEADWATER_API_URL) refused or failed a request
    │   ├── ApiUnavailableError     cannot be reached (refused, timed out, not a headwater server)
    │   └── ApiAuthError            rejected our credentials (HTTP 401/403, websocket close 1008)
    ├── StorageError                the database cannot be used
    │   ├── DatabaseUnavailableError  cannot be opened or written (permissions, disk full, locked)
    │   ├── DatabaseCorruptError      the file is not a headwater database, or is damaged
    │   ├── SchemaVersionError        written by a newer headwater than this one
    │   └── InvalidPageTokenError     a page token that this database did not issue
    ├── InvalidRunDeletion          a run still in progress cannot be deleted (ValueError)
    ├── BlockError                  a block cannot be built, saved, loaded or used
    │   ├── InvalidBlockError         a field value of the wrong type, a bad name (ValueError)
    │   │   └── UnknownPlaceholderError  a {{key}} no custom webhook can fill (also KeyError)
    │   ├── BlockNotFoundError        no block of that type and name (ValueError)
    │   ├── BlockAlreadyExistsError   the name is taken and overwrite was not asked (ValueError)
    │   ├── BlockKeyError             the key file that encrypts secrets is unsafe or wrong
    │   └── NotificationError         a notification was not delivered (raise_on_failure only)
    ├── VariableError               a variable's name or value breaks the rules, or it exists
    ├── AutomationError             an automation cannot be stored, found or carried out
    │   ├── AutomationValidationError a definition breaks the rules; names the field (ValueError)
    │   ├── AutomationNotFound        no automation with that name or id (ValueError)
    │   ├── AutomationNameTaken       another automation already has that name (ValueError)
    │   └── ActionFailed              an action could not be carried out; carries the reason
    ├── ConcurrencyError            a concurrency limit cannot be stored, found or used
    │   ├── ConcurrencySlotAcquisitionError  slots that can never be taken (strict and missing,
    │   │                                     occupy over the limit, rate_limit without decay)
    │   ├── ConcurrencySlotTimeoutError      no slot within timeout_seconds (also TimeoutError)
    │   ├── ConcurrencyLimitNotFound         no limit with that name (ValueError)
    │   └── ConcurrencyLimitExistsError      a limit with that name exists (ValueError)
    ├── ArtifactError               an artifact cannot be created or found
    │   ├── InvalidArtifactError      a bad key, table or progress value (ValueError)
    │   └── ArtifactNotFound          no artifact with that id (ValueError)
    ├── ResultError                 a persisted result cannot be written, found or read
    │   ├── ResultNotFound            no record under that storage key or run id (also KeyError)
    │   ├── SerializationError        a result the serializer cannot (de)serialise
    │   └── ResultStorageError        the result storage cannot be used (e.g. a missing driver)
    ├── CacheKeyError               a cache key cannot be computed (unhashable input; ValueError)
    ├── DeploymentError             a deployment cannot be stored, found or run
    │   ├── ScheduleValidationError   a bad cron, timezone, interval or rrule (ValueError)
    │   ├── DeploymentValidationError a definition or run request breaks the rules (ValueError)
    │   └── DeploymentNotFound        no deployment with that name or id (ValueError)
    └── LockTimeout                 a transaction lock was not acquired in time (TimeoutError)

Warnings derive from :class:`HeadwaterWarning` (a ``UserWarning``):

.. code-block:: text

    HeadwaterWarning
    ├── ArtifactProgressWarning     a progress value outside 0-100 was clamped
    └── CachePolicyWarning          caching options that conflict (one of them is ignored)
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


PrefectException = HeadwaterError
"""Prefect's name for the root of its exceptions (``prefect.exceptions.PrefectException``)."""


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


class ApiError(HeadwaterError):
    """Raised when the headwater server refuses or fails a request; names the URL, never a secret.

    Attributes:
        url: the endpoint concerned (``http://host:4200/api/flow_runs/filter``).
        cause: a short, readable reason.
    """

    def __init__(self, url: str, cause: str) -> None:
        self.url = url
        self.cause = cause
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"headwater server {self.url}: {self.cause}"


class ApiUnavailableError(ApiError):
    """Raised when the server cannot be reached: connection refused, DNS failure, a timeout,
    or an answer that is not a headwater server's."""


class ApiAuthError(ApiError):
    """Raised when the server rejects our credentials (HTTP 401/403, or websocket close 1008);
    check ``HEADWATER_API_AUTH_STRING`` / ``HEADWATER_API_KEY``."""


class WebhookError(HeadwaterError, ValueError):
    """Raised when a webhook definition is invalid: a bad slug, or a template that fails."""


class WebhookExistsError(WebhookError):
    """Raised when creating a webhook whose slug is already taken."""


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


class InvalidRunDeletion(HeadwaterError, ValueError):
    """A run that cannot be deleted yet: it is still in progress."""


class InvalidPageTokenError(StorageError, ValueError):
    """Raised when a page token given to a query is malformed or was not issued by it."""


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class BlockError(HeadwaterError):
    """Base for errors about blocks; messages name the block type and name, never a secret."""


class InvalidBlockError(BlockError, ValueError):
    """Raised when a block is built with a field value of the wrong type, or given a bad name."""


class UnknownPlaceholderError(InvalidBlockError, KeyError):
    """Raised when a custom webhook template uses a ``{{key}}`` that nothing can fill.

    It is also a KeyError, as in Prefect; its message reads like a ValueError's.

    Attributes:
        placeholder: the unknown key.
        allowed: the keys that may be used.
    """

    def __init__(self, placeholder: str, allowed: list[str]) -> None:
        self.placeholder = placeholder
        self.allowed = allowed
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            f"unknown placeholder {{{{{self.placeholder}}}}} in the webhook template; "
            f"the placeholders that can be used are {', '.join(self.allowed)}"
        )


class BlockNotFoundError(BlockError, ValueError):
    """Raised when no saved block has the requested type and name (or id)."""


class BlockAlreadyExistsError(BlockError, ValueError):
    """Raised when saving a block under a taken name without ``overwrite=True``."""


class BlockKeyError(BlockError):
    """Raised when the key file that encrypts block secrets cannot be used safely: it is
    readable by other users, is not a key, or is not the key the secrets were saved with.

    Attributes:
        path: the key file.
    """

    def __init__(self, path: str, cause: str) -> None:
        self.path = path
        self.cause = cause
        super().__init__(f"block key file {path}: {cause}")


class NotificationError(BlockError):
    """Raised when a notification could not be delivered, only inside
    ``with block.raise_on_failure():``; elsewhere a failed delivery is an event and a log line.

    Attributes:
        reason: why the last attempt failed, with secrets and URL tokens masked.
        block_type: the slug of the notification block.
        attempts: how many times delivery was tried.
        log: the same as ``reason`` (Prefect's attribute name).
    """

    def __init__(self, reason: str, *, block_type: str, attempts: int) -> None:
        self.reason = reason
        self.block_type = block_type
        self.attempts = attempts
        super().__init__(
            f"{block_type} notification failed after {attempts} attempt"
            f"{'' if attempts == 1 else 's'}: {reason}"
        )

    @property
    def log(self) -> str:
        return self.reason


class VariableError(HeadwaterError, ValueError):
    """Raised when a variable's name or value breaks the rules (the message names the
    variable), or when setting an existing one without ``overwrite=True``."""


class AutomationError(HeadwaterError):
    """Base for errors about automations."""


class AutomationValidationError(AutomationError, ValueError):
    """Raised when an automation definition breaks the rules; nothing is stored.

    Attributes:
        field: where, as a dotted path (``trigger.triggers[0].within``), or "" for the whole.
        detail: what is wrong there.
    """

    def __init__(self, field: str, detail: str) -> None:
        self.field = field
        self.detail = detail
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" at {self.field}" if self.field else ""
        return f"invalid automation{where}: {self.detail}"


class AutomationNotFound(AutomationError, ValueError):
    """Raised when no stored automation has the requested name or id."""


class AutomationNameTaken(AutomationError, ValueError):
    """Raised when creating (or renaming to) a name another automation already has."""


class ActionFailed(AutomationError):
    """Raised by an automation action that could not be carried out.

    Attributes:
        reason: a readable reason, the ``reason`` of the ``action.failed`` event.
        retryable: True when trying again later may succeed (network errors, HTTP 5xx).
        details: extra fields for the failure event's payload (e.g. ``template_error``).
    """

    def __init__(
        self, reason: str, *, retryable: bool = False, details: dict[str, Any] | None = None
    ) -> None:
        self.reason = reason
        self.retryable = retryable
        self.details = details or {}
        super().__init__(reason)


class ConcurrencyError(HeadwaterError):
    """Base for errors about concurrency limits and their slots."""


class ConcurrencySlotAcquisitionError(ConcurrencyError):
    """Raised when slots can never be taken, so waiting would be pointless.

    A limit that does not exist under ``strict=True``, ``occupy`` larger than a limit
    (a tag limit of 0 included: Prefect aborts such task runs), or ``rate_limit`` on a
    limit without ``slot_decay_per_second``.

    Attributes:
        names: the limits concerned.
    """

    def __init__(self, message: str, names: list[str] | tuple[str, ...] = ()) -> None:
        self.names = list(names)
        super().__init__(message)


class ConcurrencySlotTimeoutError(ConcurrencyError, TimeoutError):
    """Raised when slots were not free within ``timeout_seconds``; a ``TimeoutError``.

    Attributes:
        names: the limits that were full.
        timeout: the seconds waited.
    """

    def __init__(self, names: list[str] | tuple[str, ...], timeout: float) -> None:
        self.names = list(names)
        self.timeout = timeout
        super().__init__(str(self))

    def __str__(self) -> str:
        listed = ", ".join(repr(name) for name in self.names)
        return f"no free slot on concurrency limit(s) {listed} within {self.timeout:g} second(s)"


class ConcurrencyLimitNotFound(ConcurrencyError, ValueError):
    """Raised when no concurrency limit has the requested name."""


class ConcurrencyLimitExistsError(ConcurrencyError, ValueError):
    """Raised when creating a concurrency limit whose name is taken."""


class ArtifactError(HeadwaterError):
    """Base for errors about artifacts."""


class InvalidArtifactError(ArtifactError, ValueError):
    """Raised when an artifact's key, table or progress value breaks the rules; the message
    names the value."""


class ArtifactNotFound(ArtifactError, ValueError):
    """Raised when updating an artifact id that is not stored."""


class ResultError(HeadwaterError):
    """Base for errors about persisted results."""


class ResultNotFound(ResultError, KeyError):
    """Raised when no persisted result exists under a storage key or run id.

    Attributes:
        reference: the storage key or run id that was looked up.
        location: where it was looked up (a directory or URL).
    """

    def __init__(self, reference: str, location: str) -> None:
        self.reference = reference
        self.location = location
        super().__init__(reference)

    def __str__(self) -> str:
        return f"no persisted result {self.reference!r} in {self.location}"


class SerializationError(ResultError):
    """Raised when a result cannot be serialised for persistence, or a stored one decoded."""


class ResultStorageError(ResultError):
    """Raised when the result storage cannot be used: a missing fsspec driver, a bad key."""


class CacheKeyError(HeadwaterError, ValueError):
    """Raised when a task's cache key cannot be computed, e.g. from an unhashable input.

    The task run fails with it before running: a silent cache miss would hide the problem.
    """


class DeploymentError(HeadwaterError):
    """Raised when a deployment cannot be stored, found, or run."""


class ScheduleValidationError(DeploymentError, ValueError):
    """A schedule that cannot be used: names the value and what was expected."""


class DeploymentValidationError(DeploymentError, ValueError):
    """A deployment definition, or a run request, that breaks the rules (names the field)."""


class DeploymentNotFound(DeploymentError, ValueError):
    """No deployment with that ``flow/deployment`` name or id."""


class LockTimeout(HeadwaterError, TimeoutError):
    """Raised when a transaction lock is not acquired within its timeout."""


class HeadwaterWarning(UserWarning):
    """The root of every warning headwater issues."""


class ArtifactProgressWarning(HeadwaterWarning):
    """Issued when a progress value outside 0-100 is clamped into that range."""


class CachePolicyWarning(HeadwaterWarning):
    """Issued when caching options conflict and one is ignored (e.g. a cache_key_fn and a
    cache_policy together, or a cache_policy with ``persist_result=False``)."""
