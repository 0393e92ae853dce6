"""Inbound webhooks: ``/hooks/<slug>`` turns an HTTP request into an event.

A webhook (stored by :mod:`headwater.server.webhook_store`) is either

- *static*: a fixed event name and resource labels; or
- *jinja*: a template, rendered in Jinja's sandbox, whose output is the event's JSON. It sees
  ``method`` (upper-case), ``headers`` (case-insensitive; credentials and tokens masked as
  ``***``) and ``body``: the parsed JSON for ``application/json``, a flat dict for a form,
  otherwise JSON if it parses, else the raw text; None for GET. ``{{ body|tojson }}`` passes
  a JSON body through as the event. Rendering is JSON-safe: a value inserted into the
  template (``"{{ body.name }}"``) is escaped as JSON string content, and a dict, list,
  number, boolean or None is written as JSON, so no request value can break out of the
  string it is placed in.

The output needs at least ``event`` and ``resource["headwater.resource.id"]``. The server
adds the webhook as a related resource (role ``webhook``, id ``headwater.webhook.<slug>``),
fills ``occurred`` and ``id`` unless given, and sets ``payload`` to
``{method, headers, body}`` unless given. Success is 204; any failure is 400 with a message
saying what went wrong, and an event ``headwater.webhook.failed`` (resource: the webhook)
carrying the request and the rendered text.

Who may call one: a webhook with a *secret* takes requests carrying it
(``X-Headwater-Webhook-Secret``, or ``?secret=``) or the server's credentials;
``require_auth`` demands the server's Basic auth string or a Bearer API key (refusing every
request when the server has none configured: fail closed). When the server requires
credentials, every other webhook requires them too, unless it was made ``public`` on purpose;
on a server without credentials webhooks are public (the server binds to 127.0.0.1). A
disabled or unknown webhook answers 404.

What a webhook may say: its events are not the engine's. An event name or resource id in
the ``headwater.`` (or ``prefect.``) namespace is refused (400), and its events are
published as *untrusted*, which storage never folds into a run's state: no request can
rewrite a run's history. Each webhook has a budget of requests (200, then 50 a second; over
it: 429) and of failure events (20, then one every ten seconds; further failures answer 400
unrecorded): :class:`~headwater.server.budget.WebhookBudgets`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import re
import time
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

import anyio
import jinja2
import msgspec
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from headwater.events.schema import RESOURCE_ID, Event, event_from_dict
from headwater.exceptions import InvalidEventError, WebhookError
from headwater.server.auth import unauthorized
from headwater.server.errors import HTTPError, JSONResponse, read_body
from headwater.server.ingest import check_size, publish_received
from headwater.server.redaction import CREDENTIAL_HEADERS, MASK, SECRET_HEADER
from headwater.server.state import get_state
from headwater.server.webhook_store import Webhook, get_webhook
from headwater.server.wire import utcnow

__all__ = ["CaseInsensitiveDict", "new_webhook", "render_event", "routes"]

logger = logging.getLogger("headwater.server")

SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
FAILED_EVENT = "headwater.webhook.failed"
RESERVED_PREFIXES = ("headwater.", "prefect.")
MIN_SECRET_LENGTH = 16
_FAILURE_BODY_CHARS = 10_000


def _json_safe(value: Any) -> Any:
    # Jinja's finalize: what lands between the template's own characters. A string is
    # escaped as JSON string content (the template writes the quotes); safe markup, what
    # |tojson gives, goes in as it is; anything else is written as JSON.
    if isinstance(value, Markup):
        return value
    if isinstance(value, str):
        return json.dumps(value)[1:-1]
    return json.dumps(value, default=str)


_environment = SandboxedEnvironment(
    undefined=jinja2.StrictUndefined, autoescape=False, finalize=_json_safe
)


class CaseInsensitiveDict(dict):  # type: ignore[type-arg]
    """Request headers for templates: ``headers['X-Token']`` finds ``x-token``."""

    def __getitem__(self, key: Any) -> Any:
        return super().__getitem__(key.lower() if isinstance(key, str) else key)

    def get(self, key: Any, default: Any = None) -> Any:
        return super().get(key.lower() if isinstance(key, str) else key, default)

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)


@lru_cache(maxsize=256)
def _compile(source: str) -> jinja2.Template:
    return _environment.from_string(source)


def new_webhook(
    slug: str,
    *,
    name: str | None = None,
    event: str | None = None,
    resource: dict[str, str] | None = None,
    template: str | None = None,
    enabled: bool = True,
    require_auth: bool = False,
    public: bool = False,
    secret: str | None = None,
) -> Webhook:
    """A validated webhook definition, static (``event`` + ``resource``) or jinja (``template``).

    Args:
        secret: the webhook's own secret (at least 16 characters); only its SHA-256 is kept.
        public: callable by anyone even when the server requires credentials.

    Raises:
        WebhookError: a bad slug, both or neither kind given, a static resource without
            ``headwater.resource.id``, a reserved event name or resource id, a short
            secret, or a template that does not compile (with its line).
    """
    if not SLUG.fullmatch(slug):
        raise WebhookError(
            f"webhook slug {slug[:140]!r} is not valid; use 1-128 letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    if secret is not None and len(secret) < MIN_SECRET_LENGTH:
        raise WebhookError(f"a webhook secret needs at least {MIN_SECRET_LENGTH} characters")
    if public and (require_auth or secret is not None):
        raise WebhookError("a public webhook takes no secret and requires no auth")
    now = utcnow()
    common: dict[str, Any] = {
        "slug": slug,
        "name": name or slug,
        "enabled": enabled,
        "require_auth": require_auth,
        "public": public,
        "secret_sha256": None if secret is None else _sha256(secret),
        "created": now,
        "updated": now,
    }
    if template is not None:
        if event is not None or resource is not None:
            raise WebhookError("give either a template, or an event name and a resource; not both")
        try:
            _compile(template)
        except jinja2.TemplateSyntaxError as exc:
            raise WebhookError(
                f"the template does not compile: {exc} (line {exc.lineno})"
            ) from None
        return Webhook(kind="jinja", template=template, **common)
    if not event:
        raise WebhookError("a static webhook needs an event name (or give a template instead)")
    if not resource or not resource.get(RESOURCE_ID):
        raise WebhookError(f"a static webhook's resource needs a non-empty {RESOURCE_ID!r}")
    reserved = _reserved(event, resource[RESOURCE_ID])
    if reserved:
        raise WebhookError(reserved)
    for label, value in resource.items():
        if not isinstance(value, str):
            raise WebhookError(f"resource label {label!r} must be a string")
    return Webhook(kind="static", event=event, resource=dict(resource), **common)


def render_event(webhook: Webhook, method: str, headers: dict[str, str], body: Any) -> Event:
    """The event ``webhook`` makes of one request (pure; jinja rendering is CPU-bound).

    Raises:
        WebhookError: rendering failed, or its output is not an event; the message says why.
            ``exc.rendered`` holds the rendered text, if any.
    """
    rendered: str | None = None
    if webhook.kind == "static":
        data: Any = {"event": webhook.event, "resource": dict(webhook.resource or {})}
    else:
        assert webhook.template is not None
        try:
            rendered = _compile(webhook.template).render(
                method=method, headers=CaseInsensitiveDict(headers), body=body
            )
        except Exception as exc:  # a user's template: any failure is the request's 400
            raise _failure(f"the template failed: {type(exc).__name__}: {exc}", None) from None
        try:
            data = json.loads(rendered)
        except ValueError as exc:
            raise _failure(f"the template's output is not JSON: {exc}", rendered) from None
    if not isinstance(data, dict):
        raise _failure(
            f"the template's output must be a JSON object, got {type(data).__name__}", rendered
        )
    if not data.get("event"):
        raise _failure("the template's output has no 'event'", rendered)
    resource = data.get("resource")
    if not isinstance(resource, dict) or not resource.get(RESOURCE_ID):
        raise _failure(f"the template's output needs resource[{RESOURCE_ID!r}]", rendered)
    reserved = _reserved(str(data["event"]), str(resource[RESOURCE_ID]))
    if reserved:
        raise _failure(reserved, rendered)
    related = data.get("related") or []
    if not isinstance(related, list):
        raise _failure("the template's output has 'related' that is not a list", rendered)
    data["related"] = [*related, webhook.related_resource()]
    data.setdefault("payload", {"method": method, "headers": dict(headers), "body": body})
    try:
        return event_from_dict(data)
    except InvalidEventError as exc:
        raise _failure(str(exc), rendered) from None


def _reserved(event: str, resource_id: str) -> str | None:
    """Why a webhook may not emit this event, or None."""
    for prefix in RESERVED_PREFIXES:
        if event.startswith(prefix):
            return f"event name {event[:200]!r} is reserved: webhooks may not use {prefix!r}"
        if resource_id.startswith(prefix):
            return (
                f"resource id {resource_id[:200]!r} is reserved: webhook events may not be "
                f"about {prefix!r} resources"
            )
    return None


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _failure(message: str, rendered: str | None) -> WebhookError:
    error = WebhookError(message)
    error.rendered = rendered  # type: ignore[attr-defined]
    return error


async def _request_parts(request: Request, limit: int) -> tuple[str, dict[str, str], Any]:
    method = request.method.upper()
    headers = {
        name: MASK if name in CREDENTIAL_HEADERS else value
        for name, value in request.headers.items()
    }
    if method not in ("POST", "PUT", "PATCH"):
        return method, headers, None
    raw = await read_body(request, limit)
    if not raw:
        return method, headers, None
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    text = raw.decode("utf-8", "replace")
    if kind == "application/json":
        try:
            return method, headers, json.loads(text)
        except ValueError as exc:
            raise WebhookError(f"the request body is not valid JSON: {exc}") from None
        except RecursionError:
            raise WebhookError("the request body nests too deeply") from None
    if kind == "application/x-www-form-urlencoded":
        return method, headers, dict(parse_qsl(text, keep_blank_values=True))
    try:
        return method, headers, json.loads(text)
    except (ValueError, RecursionError):
        return method, headers, text


def _allowed(state: Any, webhook: Webhook, request: Request) -> bool:
    """Whether this request may use ``webhook`` (see the module docstring)."""
    authenticator = state.authenticator
    if authenticator.enabled and authenticator.check_header(request.headers.get("authorization")):
        return True
    if webhook.secret_sha256 is not None:
        given = request.headers.get(SECRET_HEADER) or request.query_params.get("secret") or ""
        return hmac.compare_digest(_sha256(given), webhook.secret_sha256)
    if webhook.require_auth:
        if not authenticator.enabled:
            logger.warning(
                "webhook %r requires auth but the server has no credentials configured "
                "(HEADWATER_SERVER_API_AUTH_STRING / HEADWATER_SERVER_API_KEYS); refused",
                webhook.slug,
            )
        return False
    return webhook.public or not authenticator.enabled


async def hook_endpoint(request: Request) -> Response:
    """Turn one request into an event (204), or say why not (400, 401, 404, 429)."""
    state = get_state(request)
    slug = request.path_params["slug"]
    webhook = await get_webhook(state.database, slug)
    if webhook is None or not webhook.enabled:
        raise HTTPError(404, f"no webhook {slug[:140]!r}")
    if not _allowed(state, webhook, request):
        return unauthorized()
    budgets = state.webhook_budgets
    wait = budgets.request(slug, time.monotonic())
    if wait:
        return JSONResponse(
            {"detail": f"webhook {slug!r} is over its request budget; retry later"},
            status_code=429,
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    maximum = state.settings.events_maximum_size_bytes
    method, body = request.method.upper(), None
    headers: dict[str, str] = {}
    try:
        method, headers, body = await _request_parts(request, maximum)
        if webhook.kind == "jinja":
            event = await anyio.to_thread.run_sync(render_event, webhook, method, headers, body)
        else:
            event = render_event(webhook, method, headers, body)
        check_size(msgspec.json.encode(event), maximum)
    except (WebhookError, InvalidEventError) as exc:
        if budgets.failure(slug, time.monotonic()):
            await _report_failure(request, webhook, method, headers, body, exc)
        return JSONResponse({"detail": str(exc)}, status_code=400)
    # untrusted: stored and seen by automations, never folded into a run's state
    await publish_received(state.bus, event, untrusted=True)
    return Response(status_code=204)


async def _report_failure(
    request: Request,
    webhook: Webhook,
    method: str,
    headers: dict[str, str],
    body: Any,
    error: Exception,
) -> None:
    if body is not None and not isinstance(body, str):
        body = json.dumps(body, default=str)
    if isinstance(body, str) and len(body) > _FAILURE_BODY_CHARS:
        body = body[:_FAILURE_BODY_CHARS] + "...(truncated)"
    rendered = getattr(error, "rendered", None)
    if isinstance(rendered, str) and len(rendered) > _FAILURE_BODY_CHARS:
        rendered = rendered[:_FAILURE_BODY_CHARS] + "...(truncated)"
    resource = webhook.related_resource()
    resource.pop("headwater.resource.role")
    event = Event(
        event=FAILED_EVENT,
        resource=resource,  # type: ignore[arg-type]
        payload={
            "request": {"method": method, "headers": headers, "body": body},
            "rendered": rendered,
            "error": str(error),
        },
    )
    await publish_received(get_state(request).bus, event)


def routes() -> list[BaseRoute]:
    """The ``/hooks/{slug}`` route."""
    return [Route("/hooks/{slug}", hook_endpoint, methods=["GET", "POST", "PUT", "PATCH"])]
