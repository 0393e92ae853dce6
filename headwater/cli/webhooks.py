"""``headwater webhook``: define the inbound webhooks the server answers at ``/hooks/<slug>``.

The commands work on the local database directly (the one ``headwater server start`` uses
with the same settings); a running server sees a change at its next request.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from headwater.cli.database import with_database
from headwater.cli.errors import CliUsageError
from headwater.cli.output import console, local_time, new_table, output_option, print_json_lines

if TYPE_CHECKING:
    from headwater.server.webhook_store import Webhook
    from headwater.storage import Database

__all__ = ["webhook"]


@click.group("webhook")
def webhook() -> None:
    """Create, list and delete inbound webhooks (/hooks/<slug>)."""


def _labels(pairs: tuple[str, ...]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliUsageError(f"--label {pair!r} is not KEY=VALUE")
        labels[key] = value
    return labels


@webhook.command("create")
@click.argument("slug")
@click.option("--event", "event_name", help="Static webhook: the event name to emit.")
@click.option("--resource-id", help="Static webhook: the event's headwater.resource.id.")
@click.option(
    "--label", "labels", multiple=True, metavar="KEY=VALUE", help="Static: more resource labels."
)
@click.option(
    "--template",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Jinja webhook: a file whose template renders the request into the event's JSON.",
)
@click.option("--name", help="A readable name (default: the slug).")
@click.option("--require-auth", is_flag=True, help="Require the server's credentials.")
@click.option(
    "--secret",
    envvar="HEADWATER_WEBHOOK_SECRET",
    help="The webhook's own secret (16+ characters), sent by callers in "
    "X-Headwater-Webhook-Secret or ?secret=; only its hash is stored.",
)
@click.option(
    "--public",
    is_flag=True,
    help="Anyone may call it, even when the server requires credentials.",
)
@click.option("--disabled", is_flag=True, help="Create it disabled (it answers 404).")
@output_option
def create(
    slug: str,
    event_name: str | None,
    resource_id: str | None,
    labels: tuple[str, ...],
    template: Path | None,
    name: str | None,
    require_auth: bool,
    secret: str | None,
    public: bool,
    disabled: bool,
    output: str,
) -> None:
    """Create webhook SLUG: static (--event and --resource-id) or Jinja (--template FILE)."""
    from headwater.exceptions import WebhookError, WebhookExistsError
    from headwater.server.webhook_store import create_webhook
    from headwater.server.webhooks import new_webhook

    if template is not None and (event_name or resource_id or labels):
        raise CliUsageError("give either --template, or --event and --resource-id; not both")
    if template is None and not (event_name and resource_id):
        raise CliUsageError("a webhook needs --event and --resource-id, or --template FILE")
    resource = None
    if template is None:
        resource = {**_labels(labels), "headwater.resource.id": resource_id or ""}
    try:
        definition = new_webhook(
            slug,
            name=name,
            event=event_name,
            resource=resource,
            template=None if template is None else template.read_text(encoding="utf-8"),
            enabled=not disabled,
            require_auth=require_auth,
            public=public,
            secret=secret,
        )
    except WebhookError as exc:
        raise CliUsageError(str(exc)) from None

    async def work(database: Database) -> Webhook:
        return await create_webhook(database, definition)

    try:
        created = with_database(work)
    except WebhookExistsError as exc:
        raise CliUsageError(str(exc)) from None
    if output == "json":
        print_json_lines([created])
        return
    click.echo(f"Created webhook {created.slug!r}: requests to {created.path} emit events.")


@webhook.command("ls")
@output_option
def list_command(output: str) -> None:
    """List the webhooks."""
    from headwater.server.webhook_store import list_webhooks

    found = with_database(list_webhooks)
    if output == "json":
        print_json_lines(found)
        return
    table = new_table("Slug", "Name", "Kind", "Emits", "Enabled", "Auth", "Created")
    for hook in found:
        emits = hook.event if hook.kind == "static" else "(template)"
        table.add_row(
            hook.slug,
            hook.name,
            hook.kind,
            emits or "",
            "yes" if hook.enabled else "no",
            "required" if hook.require_auth else "public",
            local_time(hook.created),
        )
    console().print(table)


@webhook.command("delete")
@click.argument("slug")
def delete(slug: str) -> None:
    """Delete webhook SLUG."""
    from headwater.server.webhook_store import delete_webhook

    async def work(database: Database) -> bool:
        return await delete_webhook(database, slug)

    if not with_database(work):
        raise CliUsageError(f"no webhook {slug!r}")
    click.echo(f"Deleted webhook {slug!r}.")
