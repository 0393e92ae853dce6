"""The client side of a headwater server (``HEADWATER_API_URL``).

- :mod:`~headwater.client.forwarder`: this process's events to the server's ``/events/in``,
  through the :mod:`~headwater.client.outbox` while the server is unreachable;
- :mod:`~headwater.client.service`: starting it from the engine's start hook, stopping it
  at exit;
- :mod:`~headwater.client.subscriber`: a live, reconnecting stream from ``/events/out``;
- :mod:`~headwater.client.http`: the HTTP API the CLI reads run history from;
- :mod:`~headwater.client.websocket`: the handshake and auth both websockets share.

Heavy libraries (websockets, httpx) are imported when first used, not with this package.
"""

from headwater.client.forwarder import Forwarder, ForwarderStats
from headwater.client.outbox import Outbox
from headwater.client.service import ensure_forwarder, get_forwarder, stop_forwarder
from headwater.client.websocket import auth_headers, open_websocket, websocket_url

__all__ = [
    "Forwarder",
    "ForwarderStats",
    "Outbox",
    "auth_headers",
    "ensure_forwarder",
    "get_forwarder",
    "open_websocket",
    "stop_forwarder",
    "websocket_url",
]
