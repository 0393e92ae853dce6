"""Settings: every ``HEADWATER_*`` environment variable, read once into one typed object.

No other module reads ``os.environ``. Tests and embedding applications change settings
with :func:`temporary_settings`, which swaps the object for the duration of a block.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec

from headwater import durations
from headwater.exceptions import SettingsError

__all__ = ["SecretValue", "Settings", "get_settings", "parse_duration", "temporary_settings"]


class SecretValue:
    """A string that never shows itself in a repr, a log line or an error message."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretValue('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretValue) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """The resolved configuration of this process.

    Attributes:
        home: directory for the database, results and keys (``HEADWATER_HOME``).
        database_url: storage location (``HEADWATER_DATABASE_URL``); None means the SQLite
            file ``<home>/headwater.db``.
        api_url: a headwater server to forward events to (``HEADWATER_API_URL``).
        api_key: Bearer token sent to the server (``HEADWATER_API_KEY``).
        api_auth_string: ``user:password`` sent to the server (``HEADWATER_API_AUTH_STRING``).
        server_api_auth_string: what the server requires (``HEADWATER_SERVER_API_AUTH_STRING``).
        server_api_keys: comma-separated keys the server also accepts as
            ``Authorization: Bearer <key>`` (``HEADWATER_SERVER_API_KEYS``); one secret, so
            no key is ever shown.
        server_host: address ``headwater server start`` binds (``HEADWATER_SERVER_HOST``);
            loopback by default, so nothing is exposed unless asked.
        server_port: port it listens on (``HEADWATER_SERVER_PORT``).
        logging_level: level of headwater's own loggers (``HEADWATER_LOGGING_LEVEL``).
        logging_log_prints: default for ``log_prints`` (``HEADWATER_LOGGING_LOG_PRINTS``).
        logging_to_console: print run logs to stderr when the application has not configured
            logging itself (``HEADWATER_LOGGING_TO_CONSOLE``).
        events_enabled: False runs flows with no persistence and no observers; hooks still
            fire (``HEADWATER_EVENTS_ENABLED``).
        task_runner_max_workers: default thread pool size
            (``HEADWATER_TASKS_RUNNER_THREAD_POOL_MAX_WORKERS``); None picks ``min(32, cpus + 4)``.
        events_maximum_size_bytes: largest serialised event accepted by ``emit_event``.
        persistence_required: True (the default) makes a flow run fail with a clear error when
            the database cannot be opened; False warns once and runs without history
            (``HEADWATER_PERSISTENCE_REQUIRED``).
        retention_period: runs, states, events and logs older than this are pruned
            (``HEADWATER_RETENTION_PERIOD``, e.g. ``30d``, ``12h``; default 30 days).
        database_batch_size: most events the persistence writer commits in one transaction
            (``HEADWATER_DATABASE_BATCH_SIZE``); under load a transaction holds what arrived
            while the previous one was written, up to this.
        database_batch_latency: longest time, in seconds, an event waits in the writer before
            its transaction starts; bounds what a hard kill can lose
            (``HEADWATER_DATABASE_BATCH_LATENCY``).
        database_busy_timeout: seconds a connection waits for another process's write lock
            before giving up (``HEADWATER_DATABASE_BUSY_TIMEOUT``).
        logging_max_message_length: stored log messages longer than this many characters are
            truncated with a marker (``HEADWATER_LOGGING_MAX_MESSAGE_LENGTH``).
        notifications_retry_attempts: times a notification block tries to deliver before it
            reports the failure (``HEADWATER_NOTIFICATIONS_RETRY_ATTEMPTS``).
        notifications_retry_delay: seconds before the second attempt; each later wait doubles,
            up to ten times this (``HEADWATER_NOTIFICATIONS_RETRY_DELAY``).
        api_outbox_path: the SQLite file that holds events while the server named by
            ``HEADWATER_API_URL`` is unreachable (``HEADWATER_API_OUTBOX_PATH``); None means
            ``<home>/outbox.db``.
        api_reconnect_max_delay: longest wait, in seconds, between two attempts to reconnect
            to the server; the backoff doubles up to it (``HEADWATER_API_RECONNECT_MAX_DELAY``).
        api_request_timeout: seconds an HTTP request, a websocket handshake or a delivery
            confirmation may take before the server counts as unreachable
            (``HEADWATER_API_REQUEST_TIMEOUT``).
        automations_enabled: False never starts the automations reactor in this process
            (``HEADWATER_AUTOMATIONS_ENABLED``).
        automations_minimum_proactive_within: the shortest window, in seconds, of a proactive
            trigger; shorter (or unset) windows are raised to it. Prefect's 10 s by default;
            tests lower it (``HEADWATER_AUTOMATIONS_MINIMUM_PROACTIVE_WITHIN``).
        automations_action_workers: actions run at once, at most
            (``HEADWATER_AUTOMATIONS_ACTION_WORKERS``).
        automations_action_queue_size: actions waiting for a worker, at most; past it an
            action fails at once rather than delay trigger evaluation
            (``HEADWATER_AUTOMATIONS_ACTION_QUEUE_SIZE``).
        automations_action_retries: further attempts of an action that failed for a transient
            reason (``HEADWATER_AUTOMATIONS_ACTION_RETRIES``).
        automations_resync_interval: seconds between checks for automations changed by other
            processes (``HEADWATER_AUTOMATIONS_RESYNC_INTERVAL``).
        results_persist_by_default: persist the results of flows and tasks that do not say
            (``HEADWATER_RESULTS_PERSIST_BY_DEFAULT``, Prefect's default False).
        results_default_storage: where persisted results go: a directory or an fsspec URL
            such as ``s3://bucket/prefix`` (``HEADWATER_RESULTS_DEFAULT_STORAGE``); None means
            ``<home>/storage``.
        results_default_serializer: ``pickle`` (cloudpickle), ``json`` or ``compressed/...``
            (``HEADWATER_RESULTS_DEFAULT_SERIALIZER``).
        tasks_default_no_cache: tasks without caching options get NO_CACHE instead of Prefect's
            DEFAULT policy (``HEADWATER_TASKS_DEFAULT_NO_CACHE``).
        tasks_refresh_cache: every task recomputes and overwrites its cache record
            (``HEADWATER_TASKS_REFRESH_CACHE``).
        tasks_disable_caching: no task reads or writes cache records
            (``HEADWATER_TASKS_DISABLE_CACHING``).
        runner_poll_frequency: seconds between a launcher's safety re-checks for due runs;
            runs are normally picked up at once, on a change to the database
            (``HEADWATER_RUNNER_POLL_FREQUENCY``, Prefect's 10 s).
        runner_process_limit: runs one serve process runs at once unless ``limit`` says
            (``HEADWATER_RUNNER_PROCESS_LIMIT``; 0 means no limit).
        runner_cancel_grace: seconds a cancelled run's process has after SIGTERM before
            SIGKILL (``HEADWATER_RUNNER_CANCEL_GRACE``).
        scheduler_min_runs / scheduler_max_runs / scheduler_min_scheduled_time /
            scheduler_max_scheduled_time: how many runs each schedule keeps waiting, and how
            far ahead (``HEADWATER_SCHEDULER_*``, Prefect's 3, 100, 1 h and 100 days).
        scheduler_loop_seconds: seconds between top-ups (``HEADWATER_SCHEDULER_LOOP_SECONDS``).
        late_runs_after_seconds: a Scheduled run not started this long after its time
            turns Late (``HEADWATER_LATE_RUNS_AFTER_SECONDS``, Prefect's 15).
    """

    home: Path
    database_url: str | None = None
    api_url: str | None = None
    api_key: SecretValue | None = None
    api_auth_string: SecretValue | None = None
    server_api_auth_string: SecretValue | None = None
    server_api_keys: SecretValue | None = None
    server_host: str = "127.0.0.1"
    server_port: int = 4200
    logging_level: str = "INFO"
    logging_log_prints: bool = False
    logging_to_console: bool = True
    events_enabled: bool = True
    task_runner_max_workers: int | None = None
    events_maximum_size_bytes: int = 1_500_000
    persistence_required: bool = True
    retention_period: datetime.timedelta = datetime.timedelta(days=30)
    database_batch_size: int = 10_000
    database_batch_latency: float = 0.1
    database_busy_timeout: float = 30.0
    logging_max_message_length: int = 100_000
    notifications_retry_attempts: int = 3
    notifications_retry_delay: float = 0.5
    api_outbox_path: Path | None = None
    api_reconnect_max_delay: float = 10.0
    api_request_timeout: float = 30.0
    automations_enabled: bool = True
    automations_minimum_proactive_within: float = 10.0
    automations_action_workers: int = 4
    automations_action_queue_size: int = 1000
    automations_action_retries: int = 2
    automations_resync_interval: float = 10.0
    results_persist_by_default: bool = False
    results_default_storage: str | None = None
    results_default_serializer: str = "pickle"
    tasks_default_no_cache: bool = False
    tasks_refresh_cache: bool = False
    tasks_disable_caching: bool = False
    runner_poll_frequency: float = 10.0
    runner_process_limit: int = 5
    runner_cancel_grace: float = 10.0
    scheduler_min_runs: int = 3
    scheduler_max_runs: int = 100
    scheduler_min_scheduled_time: datetime.timedelta = datetime.timedelta(hours=1)
    scheduler_max_scheduled_time: datetime.timedelta = datetime.timedelta(days=100)
    scheduler_loop_seconds: float = 60.0
    late_runs_after_seconds: float = 15.0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables (``os.environ`` by default).

        Raises:
            SettingsError: a variable holds a value of the wrong kind; the message names it.
        """
        env = os.environ if environ is None else environ
        home = Path(env.get("HEADWATER_HOME") or Path.home() / ".headwater").expanduser()
        return cls(
            home=home,
            database_url=env.get("HEADWATER_DATABASE_URL") or None,
            api_url=(env.get("HEADWATER_API_URL") or "").rstrip("/") or None,
            api_key=_secret(env, "HEADWATER_API_KEY"),
            api_auth_string=_secret(env, "HEADWATER_API_AUTH_STRING"),
            server_api_auth_string=_secret(env, "HEADWATER_SERVER_API_AUTH_STRING"),
            server_api_keys=_secret(env, "HEADWATER_SERVER_API_KEYS"),
            server_host=env.get("HEADWATER_SERVER_HOST") or "127.0.0.1",
            server_port=_positive_int(env, "HEADWATER_SERVER_PORT") or 4200,
            logging_level=_level(env, "HEADWATER_LOGGING_LEVEL", "INFO"),
            logging_log_prints=_bool(env, "HEADWATER_LOGGING_LOG_PRINTS", False),
            logging_to_console=_bool(env, "HEADWATER_LOGGING_TO_CONSOLE", True),
            events_enabled=_bool(env, "HEADWATER_EVENTS_ENABLED", True),
            task_runner_max_workers=_positive_int(
                env, "HEADWATER_TASKS_RUNNER_THREAD_POOL_MAX_WORKERS"
            ),
            events_maximum_size_bytes=_positive_int(env, "HEADWATER_EVENTS_MAXIMUM_SIZE_BYTES")
            or 1_500_000,
            persistence_required=_bool(env, "HEADWATER_PERSISTENCE_REQUIRED", True),
            retention_period=_duration(env, "HEADWATER_RETENTION_PERIOD")
            or datetime.timedelta(days=30),
            database_batch_size=_positive_int(env, "HEADWATER_DATABASE_BATCH_SIZE") or 10_000,
            database_batch_latency=_positive_float(env, "HEADWATER_DATABASE_BATCH_LATENCY", 0.1),
            database_busy_timeout=_positive_float(env, "HEADWATER_DATABASE_BUSY_TIMEOUT", 30.0),
            logging_max_message_length=_positive_int(env, "HEADWATER_LOGGING_MAX_MESSAGE_LENGTH")
            or 100_000,
            notifications_retry_attempts=_positive_int(
                env, "HEADWATER_NOTIFICATIONS_RETRY_ATTEMPTS"
            )
            or 3,
            notifications_retry_delay=_positive_float(
                env, "HEADWATER_NOTIFICATIONS_RETRY_DELAY", 0.5
            ),
            api_outbox_path=_path(env, "HEADWATER_API_OUTBOX_PATH"),
            api_reconnect_max_delay=_positive_float(env, "HEADWATER_API_RECONNECT_MAX_DELAY", 10.0),
            api_request_timeout=_positive_float(env, "HEADWATER_API_REQUEST_TIMEOUT", 30.0),
            automations_enabled=_bool(env, "HEADWATER_AUTOMATIONS_ENABLED", True),
            automations_minimum_proactive_within=_positive_float(
                env, "HEADWATER_AUTOMATIONS_MINIMUM_PROACTIVE_WITHIN", 10.0
            ),
            automations_action_workers=_positive_int(env, "HEADWATER_AUTOMATIONS_ACTION_WORKERS")
            or 4,
            automations_action_queue_size=_positive_int(
                env, "HEADWATER_AUTOMATIONS_ACTION_QUEUE_SIZE"
            )
            or 1000,
            automations_action_retries=_non_negative_int(
                env, "HEADWATER_AUTOMATIONS_ACTION_RETRIES", 2
            ),
            automations_resync_interval=_positive_float(
                env, "HEADWATER_AUTOMATIONS_RESYNC_INTERVAL", 10.0
            ),
            results_persist_by_default=_bool(env, "HEADWATER_RESULTS_PERSIST_BY_DEFAULT", False),
            results_default_storage=env.get("HEADWATER_RESULTS_DEFAULT_STORAGE") or None,
            results_default_serializer=env.get("HEADWATER_RESULTS_DEFAULT_SERIALIZER") or "pickle",
            tasks_default_no_cache=_bool(env, "HEADWATER_TASKS_DEFAULT_NO_CACHE", False),
            tasks_refresh_cache=_bool(env, "HEADWATER_TASKS_REFRESH_CACHE", False),
            tasks_disable_caching=_bool(env, "HEADWATER_TASKS_DISABLE_CACHING", False),
            runner_poll_frequency=_positive_float(env, "HEADWATER_RUNNER_POLL_FREQUENCY", 10.0),
            runner_process_limit=_non_negative_int(env, "HEADWATER_RUNNER_PROCESS_LIMIT", 5),
            runner_cancel_grace=_positive_float(env, "HEADWATER_RUNNER_CANCEL_GRACE", 10.0),
            scheduler_min_runs=_positive_int(env, "HEADWATER_SCHEDULER_MIN_RUNS") or 3,
            scheduler_max_runs=_positive_int(env, "HEADWATER_SCHEDULER_MAX_RUNS") or 100,
            scheduler_min_scheduled_time=_duration(env, "HEADWATER_SCHEDULER_MIN_SCHEDULED_TIME")
            or datetime.timedelta(hours=1),
            scheduler_max_scheduled_time=_duration(env, "HEADWATER_SCHEDULER_MAX_SCHEDULED_TIME")
            or datetime.timedelta(days=100),
            scheduler_loop_seconds=_positive_float(env, "HEADWATER_SCHEDULER_LOOP_SECONDS", 60.0),
            late_runs_after_seconds=_positive_float(env, "HEADWATER_LATE_RUNS_AFTER_SECONDS", 15.0),
        )


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean; expected one of true/false/1/0/yes/no")


def _positive_int(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if value <= 0:
        raise SettingsError(f"{name}={raw!r} must be a positive integer")
    return value


def _non_negative_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if value < 0:
        raise SettingsError(f"{name}={raw!r} must be zero or a positive integer")
    return value


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not value > 0:
        raise SettingsError(f"{name}={raw!r} must be a positive number")
    return value


def parse_duration(text: str) -> datetime.timedelta:
    """A positive duration (``"30d"``, ``"12h"``, ``"3600"``...; see :mod:`headwater.durations`).

    Used by settings and by ``headwater db prune --older-than``.

    Raises:
        ValueError: the text is not a positive duration.
    """
    value = durations.parse_duration(text)
    if value <= datetime.timedelta(0):
        raise ValueError(f"{text!r} is not a positive duration")
    return value


def _duration(env: Mapping[str, str], name: str) -> datetime.timedelta | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r}: {exc}") from None


def _level(env: Mapping[str, str], name: str, default: str) -> str:
    raw = (env.get(name) or default).strip().upper()
    if raw not in {"CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"}:
        raise SettingsError(
            f"{name}={raw!r} is not a logging level; "
            "expected DEBUG, INFO, WARNING, ERROR or CRITICAL"
        )
    return raw


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name)
    return Path(raw).expanduser() if raw else None


def _secret(env: Mapping[str, str], name: str) -> SecretValue | None:
    raw = env.get(name)
    return SecretValue(raw) if raw else None


_current: Settings | None = None


def get_settings() -> Settings:
    """Return the settings of this process, reading the environment on first use."""
    global _current
    if _current is None:
        _current = Settings.from_environ()
    return _current


@contextmanager
def temporary_settings(**overrides: Any) -> Iterator[Settings]:
    """Run a block with some settings replaced; the previous settings come back afterwards.

    Example:
        ``with temporary_settings(events_enabled=False): my_flow()``
    """
    global _current
    previous = get_settings()
    _current = msgspec.structs.replace(previous, **overrides)
    try:
        yield _current
    finally:
        _current = previous
