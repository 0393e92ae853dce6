"""uvicorn's websocket protocol, with pongs that mean "everything before was handled".

Prefect's event clients use a ping as a delivery checkpoint: once the pong for a ping comes
back, every event sent before the ping counts as accepted, and only later ones are re-sent
after a reconnect. A plain websocket server answers a ping the moment it parses it, which
can be before the application has even read the frames that came ahead of it in the same
TCP segment; those events would then be lost silently if the server died.

:class:`CheckpointWebSocketProtocol` holds each pong back until the application has asked
for the message *after* every message that preceded the ping, and then until the
application's *durability barrier* says those messages are kept: the ingest handler
publishes each event before it asks for the next message, and registers a barrier that
waits for the bus's lossless consumers (persistence, which acknowledges after its commit).
So a pong means every earlier event is committed; a server killed after acknowledging
loses nothing the client counted as delivered. A barrier that fails (the database cannot
be written) closes the connection instead of answering, and the client re-sends.

It is uvicorn's ``websockets-sansio`` implementation (built on the ``websockets`` library's
sans-I/O protocol) with a few overrides, so it needs uvicorn >= 0.35; pass it to uvicorn as
``ws=CheckpointWebSocketProtocol``. It also refuses to write to a connection that is already
closing (the application gets a disconnect), so a burst to a client that died is not written
into a dead socket.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from uvicorn._types import ASGIReceiveEvent, ASGISendEvent
from uvicorn.config import Config
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.exceptions import InvalidState
from websockets.extensions.base import ServerExtensionFactory
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.server import ServerProtocol

__all__ = ["BARRIER_EXTENSION", "Barrier", "CheckpointWebSocketProtocol"]

Barrier = Callable[[], Awaitable[bool]]
BARRIER_EXTENSION = "headwater.durability_barrier"
"""ASGI scope extension: call ``scope["extensions"][BARRIER_EXTENSION](barrier)`` to make
pongs wait for ``barrier()`` (True: everything published so far is kept)."""


class _HeldPongServerProtocol(ServerProtocol):
    """websockets' server protocol, except that it does not answer a ping by itself."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pings: deque[bytes] = deque()

    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.PING:
            # Answered by CheckpointWebSocketProtocol once the application caught up.
            self.pings.append(bytes(frame.data))
            self.events.append(frame)
            return
        super().recv_frame(frame)


class CheckpointWebSocketProtocol(WebSocketsSansIOProtocol):
    """A websocket connection whose pongs confirm that earlier messages were handled."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        extensions: list[ServerExtensionFactory] = []
        if self.config.ws_per_message_deflate:
            extensions = [
                ServerPerMessageDeflateFactory(
                    server_max_window_bits=12,
                    client_max_window_bits=12,
                    compress_settings={"memLevel": 5},
                )
            ]
        self.conn = _HeldPongServerProtocol(
            extensions=extensions,
            max_size=self.config.ws_max_size,
            logger=logging.getLogger("uvicorn.error"),
        )
        self._queued = 0  # messages handed to the application's queue
        self._taken = 0  # ... taken by the application
        self._done = 0  # ... that the application has finished with
        self._pongs: deque[tuple[int, bytes]] = deque()  # (messages before the ping, payload)
        self._barrier: Barrier | None = None
        self._durable: deque[bytes] = deque()  # pongs due once the barrier passes
        self._barrier_task: asyncio.Task[None] | None = None

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][BARRIER_EXTENSION] = self._set_barrier

    def _set_barrier(self, barrier: Barrier) -> None:
        self._barrier = barrier

    def connection_lost(self, exc: Exception | None) -> None:
        task, self._barrier_task = self._barrier_task, None
        if task is not None:
            task.cancel()
        super().connection_lost(exc)

    def send_receive_event_to_app(self) -> None:
        before = self.queue.qsize()
        super().send_receive_event_to_app()
        if self.queue.qsize() > before:
            self._queued += 1

    def handle_ping(self) -> None:
        conn = self.conn
        assert isinstance(conn, _HeldPongServerProtocol)
        self._pongs.append((self._queued, conn.pings.popleft()))
        self._answer_pongs()

    def _answer_pongs(self) -> None:
        pongs = self._pongs
        while pongs and pongs[0][0] <= self._done:
            _, payload = pongs.popleft()
            if self._barrier is None:
                if not self._send_pong(payload):
                    pongs.clear()
                    return
            else:
                self._durable.append(payload)
        if self._durable and self._barrier_task is None:
            self._barrier_task = self.loop.create_task(self._answer_when_durable())

    async def _answer_when_durable(self) -> None:
        """Answer the due pongs, in order, each once everything before it is kept."""
        try:
            while self._durable:
                due = list(self._durable)
                self._durable.clear()
                assert self._barrier is not None
                if not await self._barrier():
                    # not kept: no confirmation; the client re-sends after reconnecting
                    self.transport.close()
                    return
                for payload in due:
                    if not self._send_pong(payload):
                        return
        finally:
            self._barrier_task = None

    def _send_pong(self, payload: bytes) -> bool:
        if self.transport.is_closing():
            return False
        try:
            self.conn.send_pong(payload)
        except InvalidState:
            return False  # the connection is closing: no pong is due any more
        self.transport.write(b"".join(self.conn.data_to_send()))
        return True

    async def send(self, message: ASGISendEvent) -> None:
        # A lost connection is only marked so on the next loop iteration; an application
        # sending a burst meanwhile would write into a dead socket (asyncio logs every try).
        if message["type"] == "websocket.send" and self.transport.is_closing():
            raise ClientDisconnected()
        await super().send(message)

    async def receive(self) -> ASGIReceiveEvent:
        # Asking for a message means the application is done with every one it took.
        self._done = self._taken
        if self._pongs:
            self._answer_pongs()
        message = await super().receive()
        if message["type"] == "websocket.receive":
            self._taken += 1
        return message
