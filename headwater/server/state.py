"""What every route of one server shares: settings, the bus, credentials, the database.

One :class:`ServerState` per application, built by
:func:`~headwater.server.app.create_app` and reached from a request or websocket with
:func:`get_state`. The database is opened by the application's lifespan, on the server's
own event loop (a :class:`~headwater.storage.Database` belongs to the loop that opened it).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection

from headwater.events.bus import EventBus
from headwater.server.auth import Authenticator
from headwater.server.budget import WebhookBudgets
from headwater.server.fanout import FeedFanout, ObserverQueue
from headwater.settings import Settings
from headwater.storage.database import Database

__all__ = ["ServerState", "get_state"]


class ServerState:
    """The shared state of one running server.

    Attributes:
        settings: the settings the server was created with.
        bus: where accepted events are published (the process-wide bus by default).
        authenticator: the credentials the server requires, if any.
        feed_buffer_size: bound of each observer's lossy queue.
        max_observers: most ``/events/out`` connections at once; more are refused (1013).
        fanout: the feed's one bus subscriber, routing events to observers.
        observers: the queues of connected observers.
        observer_send_timeout: seconds a batch may wait for an observer that does not read.
        webhook_budgets: each inbound webhook's request and failure-event budgets.
        manage_persistence: whether this server started persistence (and so reports on it).
    """

    def __init__(
        self,
        settings: Settings,
        bus: EventBus,
        *,
        feed_buffer_size: int,
        max_observers: int,
        observer_send_timeout: float,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.authenticator = Authenticator.from_settings(settings)
        self.feed_buffer_size = feed_buffer_size
        self.max_observers = max_observers
        self.fanout = FeedFanout(bus)
        self.observer_send_timeout = observer_send_timeout
        self.webhook_budgets = WebhookBudgets()
        self.observers: set[ObserverQueue] = set()
        self.manage_persistence = False
        self._database: Database | None = None
        self.last_crash_sweep = -1e18  # monotonic time of the last on-demand crash check

    @property
    def database(self) -> Database:
        """The server's database connection (readers, and writes of webhook definitions).

        Raises:
            RuntimeError: the server has not started (or has stopped).
        """
        if self._database is None:
            raise RuntimeError("the headwater server's database is not open (not started?)")
        return self._database

    @database.setter
    def database(self, database: Database | None) -> None:
        self._database = database

    @property
    def ready(self) -> bool:
        return self._database is not None

    def __repr__(self) -> str:
        return f"<ServerState observers={len(self.observers)} ready={self.ready}>"


def get_state(connection: HTTPConnection | Any) -> ServerState:
    """The :class:`ServerState` of the application serving ``connection``."""
    state: ServerState = connection.app.state.headwater
    return state
