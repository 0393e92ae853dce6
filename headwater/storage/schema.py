"""The database schema, as the ordered list of migrations that build it.

Each migration is a version number and the statements that take a database from the
previous version to this one; a database's version lives in ``PRAGMA user_version``. A
released migration is never edited: a change to the schema is a new migration at the end.

Conventions, chosen for speed and for reading the file with the ``sqlite3`` shell:

- ids (UUIDs) are stored as their canonical 36-character text;
- timestamps are UTC ISO-8601 text with microseconds and ``+00:00``
  (``2024-05-01T12:00:00.000000+00:00``): fixed width, so text order is time order;
- JSON (parameters, tags, whole events) is stored as text, so SQLite's JSON functions work;
- tables written once per event and read by key (``event_resources``) are ``WITHOUT
  ROWID`` with the lookup key as primary key: one B-tree per row instead of two, and the
  key doubles as the idempotency check when an event is delivered twice.
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

_WEBHOOKS = Migration(
    7,
    "inbound webhooks: the template that turns a request to /hooks/<slug> into an event",
    (
        # kind 'static': template is JSON {"event": ..., "resource": {...}};
        # kind 'jinja': template is the Jinja source rendering the event's JSON.
        """
        CREATE TABLE webhooks (
            slug TEXT PRIMARY KEY NOT NULL,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            template TEXT NOT NULL,
            enabled INTEGER NOT NULL DEFAULT 1,
            require_auth INTEGER NOT NULL DEFAULT 0,
            created TEXT NOT NULL,
            updated TEXT NOT NULL
        )
        """,
    ),
)

_NO_RUN_STATES = Migration(
    4,
    "state history read from the state-change events; run_states dropped",
    (
        # A run's state history is exactly its own state-change events, found through
        # ix_events_resource; a second copy of each state cost the writer a row per event.
        "DROP TABLE run_states",
    ),
)

_BLOCKS = Migration(
    5,
    "block documents (secret fields encrypted inside data) and variables",
    (
        # data: the block's fields as JSON; a secret field's value is {"$encrypted": <token>},
        # a Fernet token made with the key file beside the database (headwater.blocks.crypto).
        """
        CREATE TABLE block_documents (
            id TEXT PRIMARY KEY NOT NULL,
            block_type TEXT NOT NULL,
            name TEXT NOT NULL,
            data TEXT NOT NULL,
            created TEXT NOT NULL,
            updated TEXT NOT NULL,
            UNIQUE (block_type, name)
        )
        """,
        """
        CREATE TABLE variables (
            id TEXT PRIMARY KEY NOT NULL,
            name TEXT NOT NULL UNIQUE,
            value TEXT NOT NULL,
            tags TEXT NOT NULL DEFAULT '[]',
            created TEXT NOT NULL,
            updated TEXT NOT NULL
        )
        """,
    ),
)

_AUTOMATIONS = Migration(
    6,
    "automations and the checkpointed state of their triggers",
    (
        # definition: the whole Automation as JSON (headwater.automations.model).
        """
        CREATE TABLE automations (
            id TEXT PRIMARY KEY NOT NULL,
            name TEXT NOT NULL UNIQUE,
            enabled INTEGER NOT NULL,
            definition TEXT NOT NULL,
            created TEXT NOT NULL,
            updated TEXT NOT NULL
        )
        """,
        # One row per open bucket, unresolved proactive firing or stored child firing of a
        # trigger (kind 'bucket' | 'fired' | 'child'); owner is the reactor that keeps it in
        # memory ('' once released), so a restarted reactor adopts only abandoned state.
        """
        CREATE TABLE automation_state (
            automation_id TEXT NOT NULL,
            trigger_path TEXT NOT NULL,
            kind TEXT NOT NULL,
            key TEXT NOT NULL,
            owner TEXT NOT NULL,
            data TEXT NOT NULL,
            updated TEXT NOT NULL,
            PRIMARY KEY (automation_id, trigger_path, kind, key)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX ix_automation_state_owner ON automation_state (owner)",
    ),
)

_CONCURRENCY = Migration(
    8,
    "concurrency limits and the leased slots that processes hold on them",
    (
        # decaying_slots: slots taken by rate_limit(), as of decayed_at; they drain at
        # slot_decay_per_second. Slots held by concurrency() are rows of concurrency_slots, so
        # a limit's use is always recomputed from live leases and can never drift.
        """
        CREATE TABLE concurrency_limits (
            id TEXT PRIMARY KEY NOT NULL,
            name TEXT NOT NULL UNIQUE,
            slot_limit INTEGER NOT NULL,
            active INTEGER NOT NULL DEFAULT 1,
            slot_decay_per_second REAL NOT NULL DEFAULT 0,
            decaying_slots REAL NOT NULL DEFAULT 0,
            decayed_at TEXT,
            created TEXT NOT NULL,
            updated TEXT NOT NULL
        )
        """,
        # One row per concurrency() block in progress: who holds it (pid and hostname, for
        # the liveness check) and until when, unless its process renews it.
        """
        CREATE TABLE concurrency_leases (
            id TEXT PRIMARY KEY NOT NULL,
            holder TEXT,
            pid INTEGER NOT NULL,
            hostname TEXT NOT NULL,
            expires TEXT NOT NULL,
            created TEXT NOT NULL
        )
        """,
        """
        CREATE TABLE concurrency_slots (
            limit_id TEXT NOT NULL,
            lease_id TEXT NOT NULL,
            slots INTEGER NOT NULL,
            PRIMARY KEY (limit_id, lease_id)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX ix_concurrency_slots_lease ON concurrency_slots (lease_id)",
    ),
)

_ARTIFACTS = Migration(
    9,
    "artifacts: markdown, tables, links, images and progress attached to runs",
    (
        # data: the artifact's data as JSON (a string for markdown/table/link/image, as in
        # Prefect, a number for progress). A key's versions are its rows; the latest wins.
        """
        CREATE TABLE artifacts (
            id TEXT PRIMARY KEY NOT NULL,
            key TEXT,
            type TEXT NOT NULL,
            description TEXT,
            data TEXT NOT NULL,
            flow_run_id TEXT,
            task_run_id TEXT,
            created TEXT NOT NULL,
            updated TEXT NOT NULL
        )
        """,
        "CREATE INDEX ix_artifacts_key ON artifacts (key, created) WHERE key IS NOT NULL",
        "CREATE INDEX ix_artifacts_flow_run ON artifacts (flow_run_id, created)"
        " WHERE flow_run_id IS NOT NULL",
        "CREATE INDEX ix_artifacts_task_run ON artifacts (task_run_id, created)"
        " WHERE task_run_id IS NOT NULL",
        "CREATE INDEX ix_artifacts_created ON artifacts (created)",
    ),
)

_WEBHOOK_ACCESS = Migration(
    10,
    "webhook access: a per-webhook secret (its SHA-256), and an explicit 'public' choice",
    (
        # Under server auth a webhook needs its secret or the server's credentials unless
        # it was made public on purpose; existing webhooks become protected (fail safe).
        "ALTER TABLE webhooks ADD COLUMN secret_sha256 TEXT",
        "ALTER TABLE webhooks ADD COLUMN public INTEGER NOT NULL DEFAULT 0",
    ),
)

_DEPLOYMENTS = Migration(
    11,
    "deployments, and what flow runs need to be scheduled, claimed and launched",
    (
        # definition: the whole deployment as JSON (headwater.deployments.model); the
        # columns are what lookups and the scheduler filter on.
        """
        CREATE TABLE deployments (
            id TEXT PRIMARY KEY NOT NULL,
            flow_name TEXT NOT NULL,
            name TEXT NOT NULL,
            paused INTEGER NOT NULL DEFAULT 0,
            definition TEXT NOT NULL,
            created TEXT NOT NULL,
            updated TEXT NOT NULL,
            UNIQUE (flow_name, name)
        )
        """,
        # A run of a deployment is inserted Scheduled before any event exists (the insert is
        # what makes its idempotency key unique); the events then fold into the same row.
        # expected_start_time: when it is due; schedule_key: the schedule that made it
        # (NULL for a requested run); launcher: who claimed it (Scheduled → Pending).
        "ALTER TABLE flow_runs ADD COLUMN deployment_id TEXT",
        "ALTER TABLE flow_runs ADD COLUMN idempotency_key TEXT",
        "ALTER TABLE flow_runs ADD COLUMN expected_start_time TEXT",
        "ALTER TABLE flow_runs ADD COLUMN schedule_key TEXT",
        "ALTER TABLE flow_runs ADD COLUMN launcher TEXT",
        "ALTER TABLE flow_runs ADD COLUMN parent_task_run_id TEXT",
        "CREATE UNIQUE INDEX ux_flow_runs_idempotency ON flow_runs (flow_name, idempotency_key)"
        " WHERE idempotency_key IS NOT NULL",
        # What the scheduler counts and launchers take: the waiting runs of a deployment.
        "CREATE INDEX ix_flow_runs_waiting ON flow_runs (deployment_id, expected_start_time)"
        " WHERE state_type = 'SCHEDULED'",
        "CREATE INDEX ix_flow_runs_deployment ON flow_runs (deployment_id, created)"
        " WHERE deployment_id IS NOT NULL",
        "CREATE INDEX ix_flow_runs_launcher ON flow_runs (launcher)"
        " WHERE launcher IS NOT NULL AND state_type IN ('PENDING', 'RUNNING', 'CANCELLING')",
    ),
)

MIGRATIONS: tuple[Migration, ...] = (
    _RUNS,
    _EVENTS,
    _LOGS,
    _NO_RUN_STATES,
    _BLOCKS,
    _AUTOMATIONS,
    _WEBHOOKS,
    _CONCURRENCY,
    _ARTIFACTS,
    _WEBHOOK_ACCESS,
    _DEPLOYMENTS,
)
"""Every migration, in order; ``MIGRATIONS[i].version == i + 1``."""

LATEST_VERSION = MIGRATIONS[-1].version
