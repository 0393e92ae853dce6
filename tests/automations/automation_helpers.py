"""Builders for automation tests: events at chosen times, a trigger driver on a fake clock."""

from __future__ import annotations

import datetime
from typing import Any

from headwater.automations.model import Trigger
from headwater.automations.triggers import (
    CompositeNode,
    EventTriggerNode,
    Firing,
    Outcome,
    compile_trigger,
    iter_nodes,
    on_deadline,
    on_event,
    start,
)
from headwater.events.schema import Event

T0 = 1_700_000_000.0


def make_event(
    name: str,
    at: float = 0.0,
    resource: str = "thing.1",
    labels: dict[str, str] | None = None,
    related: list[dict[str, str]] | None = None,
) -> Event:
    return Event(
        event=name,
        occurred=datetime.datetime.fromtimestamp(T0 + at, datetime.timezone.utc),
        resource={"headwater.resource.id": resource, **(labels or {})},
        related=related or [],
    )


class Driver:
    """Feeds events and clock ticks to a compiled trigger; collects root firings."""

    def __init__(self, trigger: Trigger, minimum: float = 10.0) -> None:
        self.root = compile_trigger(trigger, minimum)
        self.deadlines: list[tuple[float, Any, Any]] = []
        self.firings: list[Firing] = []
        out = Outcome()
        start(self.root, T0, out)
        self._take(out)

    def _take(self, out: Outcome) -> list[Firing]:
        self.deadlines.extend(out.deadlines)
        self.firings.extend(out.firings)
        return out.firings

    def send(self, event: Event) -> list[Firing]:
        out = Outcome()
        for node in iter_nodes(self.root):
            if isinstance(node, EventTriggerNode) and node.covers(event):
                on_event(node, event, event.occurred.timestamp(), out)
        return self._take(out)

    def tick(self, at: float) -> list[Firing]:
        """Advance the fake clock to ``T0 + at`` and run every deadline due."""
        now = T0 + at
        due = sorted(d for d in self.deadlines if d[0] <= now)
        self.deadlines = [d for d in self.deadlines if d[0] > now]
        out = Outcome()
        for _, node, key in due:
            on_deadline(node, key, now, out)
        return self._take(out)

    def triggered(self) -> list[Firing]:
        return [f for f in self.firings if f.state == "triggered"]

    @property
    def composite(self) -> CompositeNode:
        assert isinstance(self.root, CompositeNode)
        return self.root


class Receiver:
    """A real HTTP server on 127.0.0.1 recording each request; ``/slow`` answers late."""

    def __init__(self, slow_seconds: float = 1.5) -> None:
        import http.server
        import threading

        self.requests: list[tuple[str, str, bytes]] = []
        self.arrived = threading.Condition()
        self.release_slow = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.path.startswith("/slow"):
                    receiver.release_slow.wait(slow_seconds)
                status = 500 if self.path.startswith("/broken") else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                with receiver.arrived:
                    receiver.requests.append((self.command, self.path, body))
                    receiver.arrived.notify_all()

            do_POST = do_GET = do_PUT = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for(self, count: int, timeout: float = 15.0) -> list[tuple[str, str, bytes]]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.requests) >= count, timeout)
            return list(self.requests)

    def close(self) -> None:
        self.release_slow.set()
        self.server.shutdown()
        self.server.server_close()


def wait_until(predicate: Any, timeout: float = 15.0) -> bool:
    """Poll ``predicate`` (a test helper; the code under test never polls)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()
