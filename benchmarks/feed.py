"""The server's event sockets: ingest throughput to the database, and live latency to observers.

Starts a real server (``headwater server start``) on a free loopback port, then measures:

1. ingest: another process, a *raw websocket client* (not ``emit_event`` and the forwarder;
   see ``benchmarks/forwarding.py`` for that path), sends N events over ``/api/events/in``
   as fast as the socket takes them, then pings. Reported: events/s until the pong (every
   event published on the server's bus) and until the server's database holds all of them
   (polled with SQLite). Budget: 20,000 events/s into the database.
2. latency: one process holding K observers on ``/api/events/out`` and another sending
   events over ``/api/events/in`` at a steady rate, each carrying its wall-clock send time;
   observers record when each arrives. Reported: p50/p99/max over every (event, observer)
   pair, for K = 1 and K = 100. Budget: p99 < 20 ms with 100 observers.

Usage: ``python benchmarks/feed.py [--events 20000] [--latency-events 1000] [--rate 100]
[--observers 1 100]``. ``--role sender|blaster|observers`` are the subprocesses it starts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import msgspec

HEADWATER = Path(sys.executable).parent / "headwater"
INGEST_BUDGET = 20_000.0
P99_BUDGET_MS = 20.0


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env.update(HEADWATER_HOME=str(home), HEADWATER_LOGGING_TO_CONSOLE="false")
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stored(home: Path, name: str) -> int:
    try:
        with sqlite3.connect(home / "headwater.db", timeout=30) as db:
            row = db.execute("SELECT count(*) FROM events WHERE event = ?", (name,)).fetchone()
            return int(row[0])
    except sqlite3.OperationalError:
        return 0  # not created yet


def _frame(name: str, n: int, sent_ns: int = 0) -> str:
    from headwater.events import Event

    event = Event(
        event=name,
        resource={"headwater.resource.id": f"bench.feed.{n % 16}", "headwater.resource.name": "b"},
        related=[{"headwater.resource.id": "bench.tag", "headwater.resource.role": "tag"}],
        payload={"n": n, "sent": sent_ns},
    )
    return msgspec.json.encode(event).decode()


async def _connect(port: int, path: str):  # type: ignore[no-untyped-def]
    from websockets.asyncio.client import connect

    websocket = await connect(
        f"ws://127.0.0.1:{port}{path}", subprotocols=["prefect"], max_size=None, compression=None
    )
    await websocket.send('{"type":"auth","token":null}')
    assert json.loads(await websocket.recv())["type"] == "auth_success"
    return websocket


async def _blaster(port: int, count: int, name: str) -> None:
    frames = [_frame(name, n) for n in range(count)]
    websocket = await _connect(port, "/api/events/in")
    started = time.time()
    for frame in frames:
        await websocket.send(frame)
    await (await websocket.ping())
    accepted = time.time()
    await websocket.close()
    print(json.dumps({"started": started, "accepted": accepted}), flush=True)


async def _sender(port: int, count: int, rate: float) -> None:
    websocket = await _connect(port, "/api/events/in")
    interval = 1.0 / rate
    start = time.perf_counter()
    for n in range(count):
        delay = start + n * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await websocket.send(_frame("bench.live", n, time.time_ns()))
    await (await websocket.ping())
    await websocket.close()


class _Payload(msgspec.Struct):
    sent: int


class _Event(msgspec.Struct):
    payload: _Payload


class _Frame(msgspec.Struct):
    type: str
    event: _Event | None = None


async def _observers(port: int, observers: int, expected: int) -> None:
    decoder = msgspec.json.Decoder(_Frame)
    sockets = [await _connect(port, "/api/events/out") for _ in range(observers)]
    subscribe = json.dumps(
        {"type": "filter", "filter": {"event": {"name": ["bench.live"]}}, "backfill": False}
    )
    for websocket in sockets:
        await websocket.send(subscribe)
        await (await websocket.ping())  # answered once the server has subscribed it
    print("ready", flush=True)
    latencies: list[float] = []
    gaps = 0

    async def observe(websocket) -> None:  # type: ignore[no-untyped-def]
        nonlocal gaps
        seen = 0
        while seen < expected:
            message = await websocket.recv()
            now = time.time_ns()
            frame = decoder.decode(message)
            if frame.event is None:
                gaps += 1
                continue
            latencies.append((now - frame.event.payload.sent) / 1e6)
            seen += 1

    await asyncio.wait_for(asyncio.gather(*(observe(ws) for ws in sockets)), timeout=300)
    for websocket in sockets:
        await websocket.close()
    print(json.dumps({"latencies": latencies, "gaps": gaps}), flush=True)


async def _idle(port: int, observers: int) -> None:
    sockets = [await _connect(port, "/api/events/out") for _ in range(observers)]
    subscribe = json.dumps(
        {"type": "filter", "filter": {"event": {"name": ["never.happens"]}}, "backfill": False}
    )
    for websocket in sockets:
        await websocket.send(subscribe)
        await (await websocket.ping())
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until told


def _role(args: argparse.Namespace) -> None:
    if args.role == "idle":
        asyncio.run(_idle(args.port, args.count))
    elif args.role == "blaster":
        asyncio.run(_blaster(args.port, args.events, args.name))
    elif args.role == "sender":
        asyncio.run(_sender(args.port, args.latency_events, args.rate))
    else:
        asyncio.run(_observers(args.port, args.count, args.latency_events))


def _spawn(*args: str, stdin: int | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, *args],
        stdout=subprocess.PIPE,
        stdin=stdin,
        text=True,
        env=os.environ,
    )


def _ingest(port: int, home: Path, count: int, name: str = "bench.in") -> float:
    blaster = _spawn(
        "--role", "blaster", "--port", str(port), "--events", str(count), "--name", name
    )  # fmt: skip
    out, _ = blaster.communicate(timeout=600)
    times = json.loads(out)
    while _stored(home, name) < count:
        time.sleep(0.005)
    committed = time.time()
    accepted_rate = count / (times["accepted"] - times["started"])
    stored_rate = count / (committed - times["started"])
    verdict = "ok" if stored_rate >= INGEST_BUDGET else "OVER BUDGET"
    print(f"ingest: {count} events over /api/events/in by a raw websocket client")
    print(f"  accepted (pong, after commit): {accepted_rate:10,.0f} events/s")
    print(f"  committed:       {stored_rate:10,.0f} events/s   budget >= 20,000  [{verdict}]")
    return stored_rate


def _ingest_beside_idle(port: int, home: Path, count: int, idle: int, alone: float) -> None:
    watchers = _spawn("--role", "idle", "--port", str(port), "--count", str(idle),
                      stdin=subprocess.PIPE)  # fmt: skip
    assert watchers.stdout is not None and watchers.stdin is not None
    assert watchers.stdout.readline().strip() == "ready"
    try:
        print(f"with {idle} idle observers (filters that match nothing) connected:")
        beside = _ingest(port, home, count, name="bench.beside")
    finally:
        watchers.stdin.close()
        watchers.wait(timeout=60)
    print(f"  committed with {idle} idle observers / alone: {beside / alone:.2f}x")


def _latency(port: int, observers: int, count: int, rate: float) -> None:
    watcher = _spawn(
        "--role", "observers", "--port", str(port), "--count", str(observers),
        "--latency-events", str(count),
    )  # fmt: skip
    assert watcher.stdout is not None
    assert watcher.stdout.readline().strip() == "ready"
    sender = _spawn(
        "--role", "sender", "--port", str(port), "--latency-events", str(count),
        "--rate", str(rate),
    )  # fmt: skip
    sender.wait(timeout=600)
    result = json.loads(watcher.stdout.readline())
    watcher.wait(timeout=60)
    latencies = sorted(result["latencies"])
    p50 = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    verdict = ""
    if observers >= 100:
        verdict = "  budget p99 < 20 ms  [" + ("ok" if p99 < P99_BUDGET_MS else "OVER BUDGET") + "]"
    print(
        f"latency, {observers:3d} observer(s), {count} events at {rate:g}/s: "
        f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  max {latencies[-1]:6.2f} ms  "
        f"gaps {result['gaps']}{verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--latency-events", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--observers", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--idle", type=int, default=99)
    parser.add_argument("--name", default="bench.in")
    parser.add_argument("--role", choices=["blaster", "sender", "observers", "idle"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--count", type=int)
    args = parser.parse_args()
    if args.role:
        _role(args)
        return
    with tempfile.TemporaryDirectory(prefix="headwater-feed-bench-") as directory:
        home = Path(directory)
        port = _free_port()
        server = subprocess.Popen(
            [str(HEADWATER), "server", "start", "--port", str(port), "--no-access-log",
             "--log-level", "warning"],
            env=_env(home),
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5)
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise
                    time.sleep(0.05)
            alone = _ingest(port, home, args.events)
            if args.idle:
                _ingest_beside_idle(port, home, args.events, args.idle, alone)
            for observers in args.observers:
                _latency(port, observers, args.latency_events, args.rate)
        finally:
            server.terminate()
            server.wait(timeout=60)


if __name__ == "__main__":
    main()
