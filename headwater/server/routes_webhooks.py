"""``/api/webhooks``: create, list, read and delete inbound webhook definitions.

``POST /api/webhooks`` takes either a static definition::

    {"slug": "orders", "event": "order.placed",
     "resource": {"headwater.resource.id": "shop.orders"}}

or a Jinja one::

    {"slug": "github",
     "template": "{\\"event\\": \\"github.{{ headers['x-github-event'] }}\\", ..."}

plus optional ``name``, ``enabled`` (true) and ``require_auth`` (false). It answers 201 with
the webhook, 409 when the slug is taken, 422 when the definition is invalid (a template that
does not compile gives its error and line). ``DELETE`` answers 204, or 404.
"""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from headwater.exceptions import WebhookError, WebhookExistsError
from headwater.server.errors import HTTPError, JSONResponse, decode_body
from headwater.server.state import get_state
from headwater.server.webhook_store import (
    create_webhook,
    delete_webhook,
    get_webhook,
    list_webhooks,
)
from headwater.server.webhooks import new_webhook

__all__ = ["WebhookCreate", "routes"]


class WebhookCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Body of ``POST /api/webhooks``."""

    slug: str
    name: str | None = None
    event: str | None = None
    resource: dict[str, str] | None = None
    template: str | None = None
    enabled: bool = True
    require_auth: bool = False
    public: bool = False
    secret: str | None = None


async def create(request: Request) -> JSONResponse:
    body = await decode_body(request, WebhookCreate)
    try:
        webhook = new_webhook(
            body.slug,
            name=body.name,
            event=body.event,
            resource=body.resource,
            template=body.template,
            enabled=body.enabled,
            require_auth=body.require_auth,
            public=body.public,
            secret=body.secret,
        )
        await create_webhook(get_state(request).database, webhook)
    except WebhookExistsError as exc:
        raise HTTPError(409, str(exc)) from None
    except WebhookError as exc:
        raise HTTPError(422, str(exc)) from None
    return JSONResponse(webhook, status_code=201)


async def list_all(request: Request) -> JSONResponse:
    return JSONResponse(await list_webhooks(get_state(request).database))


async def read_one(request: Request) -> JSONResponse:
    slug = request.path_params["slug"]
    webhook = await get_webhook(get_state(request).database, slug)
    if webhook is None:
        raise HTTPError(404, f"no webhook {slug[:140]!r}")
    return JSONResponse(webhook)


async def delete(request: Request) -> Response:
    slug = request.path_params["slug"]
    if not await delete_webhook(get_state(request).database, slug):
        raise HTTPError(404, f"no webhook {slug[:140]!r}")
    return Response(status_code=204)


def routes() -> list[BaseRoute]:
    """The webhook definition routes, relative to ``/api``."""
    return [
        Route("/webhooks", create, methods=["POST"]),
        Route("/webhooks", list_all, methods=["GET"]),
        Route("/webhooks/{slug}", read_one, methods=["GET"]),
        Route("/webhooks/{slug}", delete, methods=["DELETE"]),
    ]
