"""Webhook definitions in the database (table ``webhooks``, schema version 7).

A :class:`Webhook` is either *static* (a fixed event name and resource labels) or *jinja*
(a template rendering the request into the event's JSON; see
:mod:`headwater.server.webhooks`). The server reads them on every request, so a webhook
created with ``headwater webhook create`` against the same database works at once, with no
restart and no cache to invalidate.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any, Literal

import msgspec

from headwater.events.schema import RESOURCE_ID, RESOURCE_NAME, RESOURCE_ROLE
from headwater.exceptions import WebhookExistsError
from headwater.storage.database import Database
from headwater.storage.rows import format_timestamp, parse_timestamp

__all__ = [
    "Webhook",
    "create_webhook",
    "delete_webhook",
    "get_webhook",
    "list_webhooks",
]

WebhookKind = Literal["static", "jinja"]


class Webhook(msgspec.Struct, frozen=True, kw_only=True):
    """One inbound webhook, reachable at ``/hooks/<slug>``.

    Attributes:
        slug: the URL segment (letters, digits, ``.``, ``_``, ``-``).
        name: a readable name; the slug by default.
        kind: ``static`` or ``jinja``.
        event: the event name (static webhooks).
        resource: the resource labels, including ``headwater.resource.id`` (static).
        template: the Jinja template rendering the event's JSON (jinja webhooks).
        enabled: a disabled webhook answers 404.
        require_auth: requests must carry the server's credentials (Basic or Bearer).
        public: anyone may call it, even when the server requires credentials (an explicit
            choice; otherwise, under server auth, a webhook needs its secret or credentials).
        secret_sha256: the SHA-256 (hex) of the webhook's own secret, which a caller sends in
            ``X-Headwater-Webhook-Secret`` (or ``?secret=``); None when it has none. The
            secret itself is never stored or shown.
        created: when it was created.
        updated: when it was last changed.
    """

    slug: str
    name: str
    kind: WebhookKind
    event: str | None = None
    resource: dict[str, str] | None = None
    template: str | None = None
    enabled: bool = True
    require_auth: bool = False
    public: bool = False
    secret_sha256: str | None = None
    created: datetime.datetime
    updated: datetime.datetime

    @property
    def path(self) -> str:
        """Where requests go, relative to the server's root."""
        return f"/hooks/{self.slug}"

    def related_resource(self) -> dict[str, str]:
        """The webhook as the related resource (role ``webhook``) of the events it makes."""
        return {
            RESOURCE_ID: f"headwater.webhook.{self.slug}",
            RESOURCE_NAME: self.name,
            RESOURCE_ROLE: "webhook",
        }


class _Static(msgspec.Struct):
    event: str
    resource: dict[str, str]


_COLUMNS = (
    "slug, name, kind, template, enabled, require_auth, created, updated, public, secret_sha256"
)


def _row(webhook: Webhook) -> tuple[Any, ...]:
    if webhook.kind == "static":
        assert webhook.event is not None and webhook.resource is not None
        stored = msgspec.json.encode(_Static(webhook.event, webhook.resource)).decode()
    else:
        assert webhook.template is not None
        stored = webhook.template
    return (
        webhook.slug,
        webhook.name,
        webhook.kind,
        stored,
        int(webhook.enabled),
        int(webhook.require_auth),
        format_timestamp(webhook.created),
        format_timestamp(webhook.updated),
        int(webhook.public),
        webhook.secret_sha256,
    )


def _webhook(row: Sequence[Any]) -> Webhook:
    slug, name, kind, stored, enabled, require_auth, created, updated, public, secret = row
    fields: dict[str, Any] = {}
    if kind == "static":
        static = msgspec.json.decode(stored, type=_Static)
        fields = {"event": static.event, "resource": static.resource}
    else:
        fields = {"template": stored}
    return Webhook(
        slug=slug,
        name=name,
        kind=kind,
        enabled=bool(enabled),
        require_auth=bool(require_auth),
        public=bool(public),
        secret_sha256=secret,
        created=parse_timestamp(created),
        updated=parse_timestamp(updated),
        **fields,
    )


async def create_webhook(database: Database, webhook: Webhook) -> Webhook:
    """Store a new webhook (validate it first with :func:`~.webhooks.new_webhook`).

    Raises:
        WebhookExistsError: the slug is taken.
        StorageError: the database cannot be written.
    """
    row = _row(webhook)

    async def insert(connection: Any) -> bool:
        async with connection.execute(
            "SELECT 1 FROM webhooks WHERE slug = ?", (webhook.slug,)
        ) as cursor:
            if await cursor.fetchone() is not None:
                return False
        await connection.execute(
            f"INSERT INTO webhooks ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row
        )
        return True

    if not await database.write(insert):
        raise WebhookExistsError(f"a webhook with slug {webhook.slug!r} already exists")
    return webhook


async def list_webhooks(database: Database) -> list[Webhook]:
    """Every webhook, by slug."""
    query = f"SELECT {_COLUMNS} FROM webhooks ORDER BY slug"
    async with database.read() as reader, reader.execute(query) as cursor:
        rows = await cursor.fetchall()
    return [_webhook(row) for row in rows]


async def get_webhook(database: Database, slug: str) -> Webhook | None:
    """The webhook with ``slug``, or None."""
    async with (
        database.read() as reader,
        reader.execute(f"SELECT {_COLUMNS} FROM webhooks WHERE slug = ?", (slug,)) as cursor,
    ):
        row = await cursor.fetchone()
    return None if row is None else _webhook(row)


async def delete_webhook(database: Database, slug: str) -> bool:
    """Delete the webhook with ``slug``; False when there was none."""

    async def delete(connection: Any) -> int:
        cursor = await connection.execute("DELETE FROM webhooks WHERE slug = ?", (slug,))
        return int(cursor.rowcount)

    return await database.write(delete) > 0
