"""The headwater server: HTTP API, event websockets (Prefect's protocol) and inbound webhooks.

Start it with ``headwater server start`` or :func:`serve`; embed it with :func:`create_app`.
"""

from headwater.server.app import create_app
from headwater.server.auth import Authenticator
from headwater.server.serve import build_config, serve
from headwater.server.webhook_store import Webhook

__all__ = ["Authenticator", "Webhook", "build_config", "create_app", "serve"]
