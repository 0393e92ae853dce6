"""The database schema, as the ordered list of migrations that build it.

Each migration is a version number and the statements that take a database from the
previous version to this one; a database's version lives in ``PRAGMA user_version``. A
released migration is never edited: a change to the schema is a new migration at the end.

Conventions, chosen for speed and for reading the file with the ``sqlite3`` shell:

- ids (UUIDs) are stored as their canonical 36-character text;
- timestamps are UTC ISO-8601 text with microseconds and ``+00:00``
  (``2024-05-01T12:00:00.000000+00:00``): fixed width, so text order is time order;
- JSON (parameters, tags, whole events) is stored as text, so SQLite's JSON functions work;
- tables written once per event and read by key (``run_states``, ``event_resources``) are
  ``WITHOUT ROWID`` with the lookup key as primary key: one B-tree per row instead of two,
  and the key doubles as the idempotency check when an event is delivered twice.
"""

from __future__ import annotations

import msgspec

__all__ = ["APPLICATION_ID", "MIGRATIONS", "Migration", "LATEST_VERSION"]

APPLICATION_ID = 0x48575452
"""``PRAGMA application_id`` of a headwater database ("HWTR"), to refuse foreign SQLite files."""


class Migration(msgspec.Struct, frozen=True):
    """One step: applying ``statements`` to version ``version - 1`` gives ``version``."""

    version: int
    description: str
    statements: tuple[str, ...]


_RUNS = Migration(
    1,
    "flows, flow runs, task runs and their state history",
    (
        """
        CREATE TABLE flows (
            id TEXT PRIMARY KEY NOT NULL,
            name TEXT NOT NULL UNIQUE,
            created TEXT NOT NULL
        )
        """,
        """
        CREATE TABLE flow_runs (
            id TEXT PRIMARY KEY NOT NULL,
            name TEXT NOT NULL,
            flow_name TEXT NOT NULL,
            flow_version TEXT,
            parent_flow_run_id TEXT,
            state_id TEXT NOT NULL,
            state_type TEXT NOT NULL,
            state_name TEXT NOT NULL,
            state_message TEXT,
            state_timestamp TEXT NOT NULL,
            run_count INTEGER NOT NULL DEFAULT 0,
            start_time TEXT,
            end_time TEXT,
            parameters TEXT NOT NULL DEFAULT '{}',
            tags TEXT NOT NULL DEFAULT '[]',
            pid INTEGER,
            hostname TEXT,
            heartbeat TEXT,
            created TEXT NOT NULL
        )
        """,
        "CREATE INDEX ix_flow_runs_created ON flow_runs (created, id)",
        "CREATE INDEX ix_flow_runs_flow_name ON flow_runs (flow_name, created)",
        "CREATE INDEX ix_flow_runs_parent ON flow_runs (parent_flow_run_id)"
        " WHERE parent_flow_run_id IS NOT NULL",
        # What the crash detector scans: only runs that may still have a live process.
        "CREATE INDEX ix_flow_runs_active ON flow_runs (state_type)"
        " WHERE state_type IN ('PENDING', 'RUNNING', 'CANCELLING')",
        """
        CREATE TABLE task_runs (
            id TEXT PRIMARY KEY NOT NULL,
            name TEXT NOT NULL,
            task_key TEXT,
            task_name TEXT,
            flow_run_id TEXT,
            flow_name TEXT,
            state_id TEXT NOT NULL,
            state_type TEXT NOT NULL,
            state_name TEXT NOT NULL,
            state_message TEXT,
            state_timestamp TEXT NOT NULL,
            run_count INTEGER NOT NULL DEFAULT 0,
            start_time TEXT,
            end_time TEXT,
            tags TEXT NOT NULL DEFAULT '[]',
            created TEXT NOT NULL
        )
        """,
        "CREATE INDEX ix_task_runs_flow_run ON task_runs (flow_run_id, created)",
        "CREATE INDEX ix_task_runs_created ON task_runs (created, id)",
        """
        CREATE TABLE run_states (
            run_id TEXT NOT NULL,
            timestamp TEXT NOT NULL,
            id TEXT NOT NULL,
            type TEXT NOT NULL,
            name TEXT NOT NULL,
            message TEXT,
            PRIMARY KEY (run_id, timestamp, id)
        ) WITHOUT ROWID
        """,
    ),
)

_EVENTS = Migration(
    2,
    "events and the index of their related resources",
    (
        """
        CREATE TABLE events (
            id TEXT PRIMARY KEY NOT NULL,
            occurred TEXT NOT NULL,
            event TEXT NOT NULL,
            resource_id TEXT NOT NULL,
            follows TEXT,
            received TEXT NOT NULL,
            data TEXT NOT NULL
        )
        """,
        "CREATE INDEX ix_events_occurred ON events (occurred, id)",
        "CREATE INDEX ix_events_event ON events (event, occurred)",
        "CREATE INDEX ix_events_resource ON events (resource_id, occurred)",
        # Related resources only; the primary resource is events.resource_id.
        """
        CREATE TABLE event_resources (
            resource_id TEXT NOT NULL,
            occurred TEXT NOT NULL,
            event_id TEXT NOT NULL,
            role TEXT NOT NULL,
            PRIMARY KEY (resource_id, occurred, event_id, role)
        ) WITHOUT ROWID
        """,
    ),
)

_LOGS = Migration(
    3,
    "run logs",
    (
        """
        CREATE TABLE logs (
            id INTEGER PRIMARY KEY,
            flow_run_id TEXT,
            task_run_id TEXT,
            name TEXT NOT NULL,
            level INTEGER NOT NULL,
            message TEXT NOT NULL,
            timestamp TEXT NOT NULL
        )
        """,
        "CREATE INDEX ix_logs_flow_run ON logs (flow_run_id, timestamp)",
        "CREATE INDEX ix_logs_task_run ON logs (task_run_id, timestamp)"
        " WHERE task_run_id IS NOT NULL",
        "CREATE INDEX ix_logs_timestamp ON logs (timestamp)",
    ),
)

MIGRATIONS: tuple[Migration, ...] = (_RUNS, _EVENTS, _LOGS)
"""Every migration, in order; ``MIGRATIONS[i].version == i + 1``."""

LATEST_VERSION = MIGRATIONS[-1].version
