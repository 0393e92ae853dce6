"""Run logging: ``get_run_logger()``, ``log_prints``, and where run logs go.

headwater owns the ``headwater`` logger tree and nothing else: it never touches the root
logger or a library's logger. Run logs go to the console only when the application has
not configured logging itself (no root handlers), and to any registered log sink (the
storage layer registers one to keep run logs in the database).
"""

from __future__ import annotations

import builtins
import contextlib
import contextvars
import logging
import sys
import threading
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from headwater.engine.context import FlowRunContext, TaskRunContext, flow_run_context
from headwater.engine.context import task_run_context as _task_ctx
from headwater.exceptions import MissingContextError
from headwater.settings import get_settings

__all__ = [
    "LogSink",
    "RunLoggerAdapter",
    "add_log_sink",
    "disable_run_logger",
    "get_logger",
    "get_run_logger",
    "remove_log_sink",
]

FLOW_RUN_LOGGER = "headwater.flow_runs"
TASK_RUN_LOGGER = "headwater.task_runs"

LogSink = Callable[[logging.LogRecord], None]
_sinks: tuple[LogSink, ...] = ()
_sinks_lock = threading.Lock()


def get_logger(name: str | None = None) -> logging.Logger:
    """A logger in headwater's own tree (``headwater.<name>``)."""
    return logging.getLogger("headwater" if not name else f"headwater.{name}")


class RunLoggerAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Adds the run's ids and names to every record it logs."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        extra = dict(self.extra or {})
        extra.update(kwargs.get("extra") or {})
        kwargs["extra"] = extra
        return msg, kwargs


def get_run_logger(
    context: FlowRunContext | TaskRunContext | None = None, **extra: Any
) -> RunLoggerAdapter:
    """The logger of the current task run, or else of the current flow run.

    Raises:
        MissingContextError: called outside of a flow or task run.
    """
    task_ctx = context if isinstance(context, TaskRunContext) else None
    flow_ctx = context if isinstance(context, FlowRunContext) else None
    if context is None:
        task_ctx = _task_ctx.get()
        flow_ctx = flow_run_context.get()
    if task_ctx is not None:
        task_run = task_ctx.task_run
        fields: dict[str, Any] = {
            "task_run_id": str(task_run.id),
            "task_run_name": task_run.name,
            "task_name": task_run.task_name,
            "flow_run_id": str(task_run.flow_run_id) if task_run.flow_run_id else None,
        }
        if flow_ctx is not None:
            fields["flow_run_name"] = flow_ctx.flow_run.name
            fields["flow_name"] = flow_ctx.flow_run.flow_name
        fields.update(extra)
        return RunLoggerAdapter(logging.getLogger(TASK_RUN_LOGGER), fields)
    if flow_ctx is not None:
        flow_run = flow_ctx.flow_run
        fields = {
            "flow_run_id": str(flow_run.id),
            "flow_run_name": flow_run.name,
            "flow_name": flow_run.flow_name,
        }
        fields.update(extra)
        return RunLoggerAdapter(logging.getLogger(FLOW_RUN_LOGGER), fields)
    if _run_logger_disabled.get():
        return RunLoggerAdapter(_DISABLED, {})
    raise MissingContextError(
        "get_run_logger() was called outside of a flow or task run; use "
        "headwater.logging.get_logger() for a plain logger"
    )


_run_logger_disabled: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "headwater_run_logger_disabled", default=False
)
_DISABLED = logging.getLogger("headwater.disabled_run_logger")
_DISABLED.disabled = True
_DISABLED.propagate = False


@contextlib.contextmanager
def disable_run_logger() -> Iterator[None]:
    """Outside a run, ``get_run_logger()`` gives a logger that drops everything (Prefect's,
    for calling a task's or flow's ``.fn`` in unit tests)."""
    token = _run_logger_disabled.set(True)
    try:
        yield
    finally:
        _run_logger_disabled.reset(token)


# -- sinks -------------------------------------------------------------------------------


def add_log_sink(sink: LogSink) -> None:
    """Send every run log record to ``sink`` too (called in the logging thread; keep it quick)."""
    global _sinks
    with _sinks_lock:
        if sink not in _sinks:
            _sinks = (*_sinks, sink)


def remove_log_sink(sink: LogSink) -> None:
    global _sinks
    with _sinks_lock:
        # equality, as in add_log_sink: a bound method is a new object on each access
        _sinks = tuple(existing for existing in _sinks if existing != sink)


class _SinkHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        for sink in _sinks:
            try:
                sink(record)
            except Exception:
                self.handleError(record)


class _RunFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        label = ""
        task_run_name = getattr(record, "task_run_name", None)
        flow_run_name = getattr(record, "flow_run_name", None)
        if task_run_name:
            label = f"Task run {task_run_name!r} - "
        elif flow_run_name:
            label = f"Flow run {flow_run_name!r} - "
        record.run_label = label
        return super().format(record)


_configured = False
_configure_lock = threading.Lock()


def configure_run_logging() -> None:
    """Set up headwater's loggers once, on the first run (never at import)."""
    global _configured
    if _configured:
        return
    with _configure_lock:
        if _configured:
            return
        settings = get_settings()
        root = logging.getLogger("headwater")
        if root.level == logging.NOTSET:
            root.setLevel(settings.logging_level)
        sink_handler = _SinkHandler()
        for name in (FLOW_RUN_LOGGER, TASK_RUN_LOGGER):
            logging.getLogger(name).addHandler(sink_handler)
        if settings.logging_to_console and not logging.getLogger().handlers and not root.handlers:
            console = logging.StreamHandler(sys.stderr)
            console.setFormatter(
                _RunFormatter(
                    "%(asctime)s.%(msecs)03d | %(levelname)-7s | %(run_label)s%(message)s",
                    datefmt="%H:%M:%S",
                )
            )
            root.addHandler(console)
        _configured = True


# -- log_prints ----------------------------------------------------------------------------

_log_prints: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "headwater_log_prints", default=False
)
_original_print = builtins.print
_print_patched = False


def _print(
    *args: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False
) -> None:
    if _log_prints.get() and (file is None or file is sys.stdout):
        try:
            logger = get_run_logger()
        except MissingContextError:
            pass
        else:
            logger.info((sep if sep is not None else " ").join(str(arg) for arg in args))
            return
    _original_print(*args, sep=sep, end=end, file=file, flush=flush)


def enable_log_prints(enabled: bool) -> contextvars.Token[bool] | None:
    """Route ``print()`` of the current run to its logger; returns a token to undo it."""
    global _print_patched
    if not enabled and not _log_prints.get():
        return None
    if enabled and not _print_patched:
        builtins.print = _print
        _print_patched = True
    return _log_prints.set(enabled)


def reset_log_prints(token: contextvars.Token[bool] | None) -> None:
    if token is not None:
        _log_prints.reset(token)
