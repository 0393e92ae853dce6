"""The forwarder: this process's events, in order, to a headwater server's ``/api/events/in``.

With ``HEADWATER_API_URL`` set, the forwarder takes the place of local persistence: it is a
lossless bus subscriber (``materialise=False``: a transition record's ``event_json()`` is
sent as it is, with no Event built) and hands every event either to the server or to the
:class:`~headwater.client.outbox.Outbox`.

Delivery confirmation follows Prefect's client: send the frames, then a websocket ping.
A headwater server holds the pong back until it has published every earlier frame on its
bus (:mod:`headwater.server.protocol`), so the pong is an exact checkpoint; a server killed
with SIGKILL after that may still lose what its own persistence had not committed (its
batch window). Only after the pong are the bus items acknowledged, so ``bus.flush()``
(which the engine calls before a flow call returns, rule 5) returns once each event is
confirmed by the server *or* committed to the outbox. When the server is unreachable the
outbox path costs one SQLite commit per batch, so flows neither wait for the network nor
fail (complaint #14).

Two tasks on the service loop share one lock that decides where a batch goes:

- the *pump* takes batches from the bus (one batch in flight: memory is the bus buffer plus
  that batch); while the forwarder is *live* it sends them directly, otherwise it appends
  them to the outbox. A failed direct send puts the batch in the outbox and ends "live";
- the *connector* (re)connects with exponential backoff and jitter, sends the outbox
  oldest first, deleting what the server confirmed, and switches to "live" only when the
  outbox is empty, under the lock; so the outbox always drains before newer events go
  out, across any number of reconnections.

A server that rejects our credentials (close 1008, HTTP 401/403) gets one ERROR log line
naming the URL (never the secret); events stay in the outbox and attempts continue at the
longest backoff, so fixing the server's auth string lets them through. Runs keep running:
losing events is what this design refuses (Prefect loses task runs here: complaint #7), and
raising in every flow would make a monitoring problem an outage.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from headwater.client.outbox import Outbox, outbox_path
from headwater.client.websocket import (
    close_quietly,
    open_websocket,
    reconnect_delay,
    websocket_url,
)
from headwater.exceptions import ApiAuthError, ApiUnavailableError, StorageError

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

    from headwater.events.bus import EventBus, Subscription
    from headwater.settings import Settings

__all__ = ["Forwarder", "ForwarderStats", "send_confirmed"]

logger = logging.getLogger("headwater.client")

BATCH_ITEMS = 1000
"""Most events sent (or stored) per confirmation."""
DRAIN_BYTES = 4 * 1024 * 1024
"""About how many bytes of outbox rows are sent per confirmation."""
SUBSCRIPTION_BUFFER = 10_000
HEARTBEAT_INTERVAL = 30.0
"""Seconds between checks for rows left by processes that are gone (and our heartbeat)."""
ISOLATE_AFTER = 2
"""Failed sends of an outbox batch after which its first event is sent alone."""
PARK_AFTER = 4
"""Failed sends after which that event is set aside as poison (see the outbox)."""
EXIT_DRAIN_TIMEOUT = 8.0
"""Seconds a stopping forwarder spends reconnecting and sending what its outbox holds."""

_encode = msgspec.json.Encoder().encode


def _frame(item: Any) -> bytes:
    """The JSON of one bus item: a transition record's own JSON, or the encoded Event."""
    event_json = getattr(item, "event_json", None)
    if event_json is not None:
        return event_json()  # type: ignore[no-any-return]
    return _encode(item if hasattr(item, "occurred") else item.to_event())


async def send_confirmed(connection: ClientConnection, frames: list[bytes], limit: float) -> None:
    """Send ``frames`` as text frames, then wait for the pong of one ping after them.

    Raises:
        ConnectionClosed: the connection broke; some frames may have arrived (event ids make
            a resend harmless).
        TimeoutError: no pong within ``limit`` seconds.
    """
    with anyio.fail_after(limit):
        for frame in frames:
            await connection.send(frame, text=True)
        pong = await connection.ping()
        await pong


class ForwarderStats(msgspec.Struct, kw_only=True):
    """What a forwarder has done so far (for logs, tests and benchmarks).

    Attributes:
        sent: events confirmed by the server straight from the bus.
        stored: events committed to the outbox.
        drained: outbox events confirmed by the server (and deleted).
        connections: successful connections.
        rejected: events the server refused as invalid (logged, not kept).
        parked: outbox events set aside because the server kept dropping the connection on
            them (kept in the outbox file's ``parked`` table, never re-sent).
    """

    sent: int = 0
    stored: int = 0
    drained: int = 0
    connections: int = 0
    rejected: int = 0
    parked: int = 0


class _Reply(msgspec.Struct):
    type: str
    detail: str = ""


_reply_decoder = msgspec.json.Decoder(_Reply)


class Forwarder:
    """Forwards this process's events to the server; see the module docstring.

    Build it with :meth:`open` on the loop that runs it, then run :meth:`serve` there.

    Attributes:
        url: the ``/events/in`` websocket URL.
        outbox: the outbox this process appends to.
        auth_error: the server's last rejection of our credentials, while it lasts.
        error: the outbox's last write failure, while it lasts (events then wait in the bus).
        connected: set once the first connection attempt has ended, either way.
    """

    def __init__(
        self, settings: Settings, bus: EventBus, outbox: Outbox, subscription: Subscription
    ) -> None:
        assert settings.api_url is not None
        self.settings = settings
        self.url = websocket_url(settings.api_url, "/events/in")
        self.bus = bus
        self.outbox = outbox
        self.subscription = subscription
        self.stats = ForwarderStats()
        self.auth_error: ApiAuthError | None = None
        self.error: StorageError | None = None
        self.connected = threading.Event()
        self._timeout = settings.api_request_timeout
        self._longest = settings.api_reconnect_max_delay
        self._lock = anyio.Lock()
        self._live = False
        self._connection: ClientConnection | None = None  # the pump's, while live
        self._trouble = anyio.Event()  # the pump's direct send failed
        self._went_live = anyio.Event()
        self._hurry = anyio.Event()  # set when stopping: the connector skips its backoff
        # consecutive failed sends of the outbox's first row: {seq: failures}
        self._drain_failures: dict[int, int] = {}
        self._attached: ClientConnection | None = None  # the connector's, while open
        self._outage = False
        self._closed = anyio.Event()

    @classmethod
    async def open(cls, settings: Settings, bus: EventBus) -> Forwarder:
        """Open the outbox and subscribe to ``bus``; events are buffered from then on.

        Raises:
            StorageError: the outbox file cannot be opened.
            ApiUnavailableError: ``HEADWATER_API_URL`` is not an http(s) URL.
        """
        assert settings.api_url is not None
        websocket_url(settings.api_url, "/events/in")  # a malformed URL fails here, clearly
        path = outbox_path(settings.home, settings.api_outbox_path)
        outbox = await Outbox.open(path, busy_timeout=settings.database_busy_timeout)
        try:
            subscription = bus.subscribe(
                lossless=True,
                buffer_size=SUBSCRIPTION_BUFFER,
                name="forwarder",
                materialise=False,
            )
        except BaseException:
            await outbox.close()
            raise
        return cls(settings, bus, outbox, subscription)

    @property
    def live(self) -> bool:
        """True while events go straight to the server (the outbox is empty)."""
        return self._live

    # -- the pump ------------------------------------------------------------------------

    async def serve(self) -> None:
        """Forward until :meth:`aclose` (or cancellation); then release the outbox and close."""
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._connect_loop)
                await self._pump()
                if not self._live and await self.outbox.pending():
                    # Stopping with events in the outbox: reconnect now (no backoff) and
                    # give them a bounded moment to reach the server.
                    self._hurry.set()
                    with anyio.move_on_after(EXIT_DRAIN_TIMEOUT):
                        await self._went_live.wait()
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._shutdown()

    async def _pump(self) -> None:
        subscription = self.subscription
        while True:
            batch = await subscription.get_batch(BATCH_ITEMS, max_latency=0)
            if not batch:
                return  # detached and drained, or closed
            frames = []
            for item in batch:
                try:
                    frames.append(_frame(item))
                except Exception:
                    logger.exception("cannot encode %r for the headwater server; skipped", item)
            if frames:
                await self._deliver(frames)
            subscription.ack(len(batch))

    async def _deliver(self, frames: list[bytes]) -> None:
        attempt = 0
        while True:
            async with self._lock:
                connection = self._connection
                if self._live and connection is not None:
                    try:
                        await send_confirmed(connection, frames, self._timeout)
                        self.stats.sent += len(frames)
                        return
                    except Exception as exc:  # ConnectionClosed, TimeoutError, OSError
                        self._live = False
                        self._trouble.set()
                        self._report_outage(f"lost the connection ({_reason(exc)})")
                try:
                    await self.outbox.append(frames)
                except StorageError as exc:
                    if self.error is None:
                        logger.error(
                            "cannot keep events for %s in the outbox: %s; they wait in memory "
                            "and flows slow down until it can be written",
                            self.url,
                            exc,
                        )
                    self.error = exc
                else:
                    self.stats.stored += len(frames)
                    if self.error is not None:
                        logger.warning("the outbox %s can be written again", self.outbox.path)
                        self.error = None
                    return
            # Lossless: keep the batch (unacknowledged) and retry; publishers feel the pressure.
            await self._backoff(reconnect_delay(attempt, self._longest))
            attempt += 1

    async def _backoff(self, delay: float) -> None:
        """Wait ``delay`` seconds before trying again, or less once stopping."""
        with anyio.move_on_after(delay):
            await self._hurry.wait()

    # -- the connector -------------------------------------------------------------------

    async def _connect_loop(self) -> None:
        attempt = 0
        while True:
            await self._adopt()
            try:
                connection = await open_websocket(self.url, self.settings)
            except ApiAuthError as exc:
                self._report_auth_failure(exc)
                self.connected.set()
                await self._backoff(reconnect_delay(64, self._longest))
                continue
            except ApiUnavailableError as exc:
                self._report_outage(f"unreachable ({exc.cause})")
                self.connected.set()
                await self._backoff(reconnect_delay(attempt, self._longest))
                attempt += 1
                continue
            self.stats.connections += 1
            if self.auth_error is not None:
                logger.warning("headwater server %s accepts our credentials again", self.url)
                self.auth_error = None
            went_live = False
            try:
                went_live = await self._serve_connection(connection)
            finally:
                with anyio.CancelScope(shield=True):
                    async with self._lock:
                        self._live = False
                        self._connection = None
                    self._attached = None
                    await close_quietly(connection)
            attempt = 0 if went_live else attempt + 1
            await self._backoff(reconnect_delay(attempt, self._longest))

    async def _serve_connection(self, connection: ClientConnection) -> bool:
        """Drain the outbox, go live, and stay so until the connection fails.

        Returns whether the connection ever went live (to reset the backoff).
        """
        self._attached = connection
        went_live = False
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._read_replies, connection, group.cancel_scope)
                while True:
                    await self._drain(connection)
                    went_live = True
                    self.connected.set()
                    if not await self._stay_live():
                        break
                group.cancel_scope.cancel()
        except Exception as group:  # anyio wraps what the drain raised in an ExceptionGroup
            exc = _unwrap(group)
            if isinstance(exc, StorageError):
                logger.error("cannot send the outbox to %s: %s", self.url, exc)
            else:  # the drain's send failed: ConnectionClosed, TimeoutError, OSError
                self._report_outage(f"lost the connection ({_reason(exc)})")
            return went_live
        if connection.close_code is not None or self._trouble.is_set():
            self._report_outage(f"lost the connection ({_close_text(connection)})")
        return went_live

    async def _read_replies(self, connection: ClientConnection, scope: anyio.CancelScope) -> None:
        """Read what the server sends (it must be read, or pongs would stall behind it) until
        the connection closes, then cancel ``scope``.

        A headwater server answers an event it cannot accept with ``{"type": "error",
        "index": n, "detail": ...}`` and goes on; such an event can never be accepted, so it
        is logged and not kept.
        """
        try:
            async for message in connection:
                try:
                    reply = _reply_decoder.decode(message)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    continue
                if reply.type == "error":
                    self.stats.rejected += 1
                    logger.warning(
                        "headwater server %s refused an event and dropped it: %s",
                        self.url,
                        reply.detail,
                    )
        except Exception:
            pass  # ConnectionClosedError: the close is reported by the caller
        finally:
            scope.cancel()

    async def _drain(self, connection: ClientConnection) -> None:
        """Send the outbox, oldest first; return once it is empty and the pump is live."""
        beat = anyio.current_time() + HEARTBEAT_INTERVAL
        while True:
            async with self._lock:
                rows = await self.outbox.peek(BATCH_ITEMS, DRAIN_BYTES)
                if not rows:
                    # The pump appends only under this lock: nothing can slip in behind us.
                    self._connection = connection
                    self._trouble = anyio.Event()
                    self._live = True
                    self._went_live.set()
                    if self._outage:
                        self._outage = False
                        logger.info(
                            "headwater server %s is reachable again; events are flowing "
                            "(%d sent from the outbox so far)",
                            self.url,
                            self.stats.drained,
                        )
                    return
            first = rows[0][0]
            failures = self._drain_failures.get(first, 0)
            if failures >= ISOLATE_AFTER:
                rows = rows[:1]  # the batch keeps failing: find out whether its first event does
                if failures >= PARK_AFTER:
                    await self._park(first, failures)
                    continue
            try:
                await send_confirmed(connection, [data for _, data in rows], self._timeout)
            except BaseException:  # a failed send, or the reader cancelling us: it closed
                self._drain_failures = {first: failures + 1}
                raise
            self._drain_failures = {}
            await self.outbox.remove([seq for seq, _ in rows])
            self.stats.drained += len(rows)
            now = anyio.current_time()
            if now >= beat:  # a long drain: other hosts must not think us gone
                beat = now + HEARTBEAT_INTERVAL
                await self.outbox.heartbeat()

    async def _park(self, seq: int, failures: int) -> None:
        reason = f"the server dropped the connection {failures} times when sent this event alone"
        await self.outbox.park(seq, reason)
        self._drain_failures = {}
        self.stats.parked += 1
        logger.error(
            "event %d of the outbox %s was set aside (table 'parked'): %s; the events after it "
            "are being sent",
            seq,
            self.outbox.path,
            reason,
        )

    async def _stay_live(self) -> bool:
        """Wait while live; True when rows of a gone process were adopted and need sending."""
        while True:
            with anyio.move_on_after(HEARTBEAT_INTERVAL):
                await self._trouble.wait()
            if not self._live:
                return False
            if await self._adopt():
                async with self._lock:
                    self._live = False
                    self._connection = None
                    self._went_live = anyio.Event()
                return True

    async def _adopt(self) -> int:
        try:
            adopted = await self.outbox.adopt()
        except StorageError as exc:
            logger.warning("cannot check the outbox for events left by other processes: %s", exc)
            return 0
        if adopted:
            logger.info("sending %d events other headwater processes left in the outbox", adopted)
        return adopted

    # -- reporting -----------------------------------------------------------------------

    def _report_outage(self, what: str) -> None:
        if self._live or self._outage:
            return
        self._outage = True
        self._went_live = anyio.Event()
        logger.warning(
            "headwater server %s: %s; events are kept in %s and sent when it is back",
            self.url,
            what,
            self.outbox.path,
        )

    def _report_auth_failure(self, exc: ApiAuthError) -> None:
        if self.auth_error is None:
            logger.error(
                "headwater server %s: %s; check HEADWATER_API_AUTH_STRING or "
                "HEADWATER_API_KEY. Events are kept in %s, nothing is lost; they are sent "
                "once the server accepts us",
                self.url,
                exc.cause,
                self.outbox.path,
            )
        self.auth_error = exc
        self._outage = True
        self._went_live = anyio.Event()

    # -- stopping ------------------------------------------------------------------------

    async def aclose(self, wait: float) -> None:
        """Forward or store everything published so far, then stop (on the serving loop).

        Args:
            wait: seconds to wait for that before returning anyway.
        """
        if not self.subscription.closed:
            self.subscription.detach()
        with anyio.move_on_after(wait):
            await self._closed.wait()

    async def _shutdown(self) -> None:
        self.subscription.close()
        async with self._lock:
            self._live = False
            connection, self._connection = self._connection, None
        if connection is not None:
            await close_quietly(connection)
        try:
            left = await self.outbox.close()
        except StorageError as exc:
            logger.warning("closing the outbox failed: %s", exc)
            left = 0
        if left:
            logger.warning(
                "%d events for %s could not be delivered before exit (waited %.0f s); they "
                "are kept in %s and the next headwater process using that server sends them",
                left,
                self.url,
                EXIT_DRAIN_TIMEOUT,
                self.outbox.path,
            )
        self.connected.set()
        self._closed.set()

    def __repr__(self) -> str:
        state = "live" if self._live else "offline"
        return f"<Forwarder {self.url!r} {state} outbox={str(self.outbox.path)!r}>"


def _unwrap(exc: BaseException) -> BaseException:
    """The first exception of a (nested) exception group, or ``exc`` itself."""
    while True:
        inner = getattr(exc, "exceptions", None)
        if not inner:
            return exc
        exc = inner[0]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no confirmation in time"
    rcvd = getattr(exc, "rcvd", None)
    if rcvd is not None:
        return f"closed with code {rcvd.code}" + (f": {rcvd.reason}" if rcvd.reason else "")
    return str(exc) or type(exc).__name__


def _close_text(connection: ClientConnection) -> str:
    code = connection.close_code
    if code is None:
        return "no confirmation in time"
    reason = connection.close_reason
    return f"closed with code {code}" + (f": {reason}" if reason else "")
