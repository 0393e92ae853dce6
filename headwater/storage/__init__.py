"""Run history in a database: flow runs, task runs, state history, events and logs.

The embedded store is one SQLite file (``<HEADWATER_HOME>/headwater.db``, or
``HEADWATER_DATABASE_URL``) shared by every process on the machine. Persistence is a
lossless bus subscriber started by :func:`ensure_persistence`; the read functions take a
:class:`Database` opened with :func:`open_database`.
"""

from headwater.storage.crashes import mark_crashed_runs
from headwater.storage.database import Database, open_database
from headwater.storage.event_queries import EventPage, read_events
from headwater.storage.persistence import (
    Persistence,
    ensure_persistence,
    get_persistence,
    stop_persistence,
)
from headwater.storage.queries import (
    FlowRunDetail,
    FlowRunRecord,
    LogEntry,
    StateRecord,
    TaskRunDetail,
    TaskRunRecord,
    read_flow_run,
    read_flow_runs,
    read_logs,
    read_task_run,
    read_task_runs,
)
from headwater.storage.retention import PruneResult, prune
from headwater.storage.rows import RunLog
from headwater.storage.writer import PersistenceWriter

__all__ = [
    # lifecycle
    "ensure_persistence",
    "stop_persistence",
    "get_persistence",
    "Persistence",
    # database
    "Database",
    "open_database",
    "PersistenceWriter",
    "RunLog",
    # reading
    "read_flow_runs",
    "read_task_runs",
    "read_flow_run",
    "read_task_run",
    "read_logs",
    "read_events",
    "EventPage",
    "FlowRunRecord",
    "TaskRunRecord",
    "FlowRunDetail",
    "TaskRunDetail",
    "StateRecord",
    "LogEntry",
    # maintenance
    "prune",
    "PruneResult",
    "mark_crashed_runs",
]
