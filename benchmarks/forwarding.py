"""Remote event forwarding: throughput to the server's database, and live latency to observers.

Starts a real server (``headwater server start``) on a free loopback port, then measures:

1. throughput: one process calls ``emit_event`` N times with ``HEADWATER_API_URL`` set; the
   forwarder sends them over ``/api/events/in``. Reported: events/s until the server
   confirmed the last one (``bus.flush()`` returned) and until the server's database holds
   all of them; and, with the server unreachable, until all are committed to the outbox;
2. latency: a process holding K websocket observers on ``/api/events/out`` and another
   process emitting events at a steady rate, each carrying its wall-clock send time; the
   observers record when each event arrives. Reported: p50/p99/max over every (event,
   observer) pair, for K = 1 and K = 100.

Usage: ``python benchmarks/forwarding.py [--events 20000] [--latency-events 500]
[--rate 200] [--observers 1 100]``. Roles ``--role producer|observers`` are the
subprocesses it starts itself.
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
from pathlib import Path

import msgspec

HEADWATER = Path(sys.executable).parent / "headwater"
RESOURCE = "bench.forwarding"


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env.update(HEADWATER_HOME=str(home), HEADWATER_LOGGING_TO_CONSOLE="false", **extra)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stored(home: Path, prefix: str) -> int:
    try:
        with sqlite3.connect(home / "headwater.db", timeout=30) as db:
            row = db.execute(
                "SELECT count(*) FROM events WHERE resource_id >= ? AND resource_id < ?",
                (prefix, prefix + "\uffff"),
            ).fetchone()
            return int(row[0])
    except sqlite3.OperationalError:
        return 0


# -- roles (subprocesses) ------------------------------------------------------------------


class _Payload(msgspec.Struct):
    t: float


class _Body(msgspec.Struct):
    payload: _Payload


class _Message(msgspec.Struct):
    type: str
    event: _Body | None = None


def producer(count: int, rate: float, tag: str) -> None:
    """Emit ``count`` events (at ``rate`` per second, or flat out when 0), then flush."""
    from headwater.client import ensure_forwarder
    from headwater.events import emit_event, get_bus

    forwarder = ensure_forwarder()
    assert forwarder is not None
    resource = {"headwater.resource.id": f"{RESOURCE}.{tag}"}
    interval = 1.0 / rate if rate else 0.0
    started = time.perf_counter()
    next_at = started
    for number in range(count):
        if interval:
            next_at += interval
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        emit_event("bench.event", resource=resource, payload={"n": number, "t": time.time()})
    emitted = time.perf_counter()
    assert get_bus().flush(timeout=300)
    confirmed = time.perf_counter()
    print(
        json.dumps(
            {
                "emit_s": emitted - started,
                "confirmed_s": confirmed - started,
                "stats": {"sent": forwarder.stats.sent, "stored": forwarder.stats.stored},
            }
        ),
        flush=True,
    )


async def observers(api_url: str, count: int, expected: int, tag: str) -> None:
    """Hold ``count`` observers; print latencies once each saw ``expected`` events."""
    from websockets.asyncio.client import connect

    decode = msgspec.json.Decoder(_Message).decode
    url = api_url.replace("http", "ws", 1) + "/events/out"
    query = {"resource": {"id": [f"{RESOURCE}.{tag}"]}}
    latencies: list[float] = []

    async def one(ready: asyncio.Event, opened: list[int]) -> None:
        async with connect(url, subprotocols=["prefect"], max_size=None) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"type": "auth", "token": None}))
            await ws.recv()
            await ws.send(json.dumps({"type": "filter", "filter": query, "backfill": False}))
            opened.append(1)
            if len(opened) == count:
                ready.set()
            seen = 0
            while seen < expected:
                data = await ws.recv(decode=False)
                now = time.time()
                message = decode(data)
                if message.type == "event" and message.event is not None:
                    latencies.append(now - message.event.payload.t)
                    seen += 1

    ready = asyncio.Event()
    opened: list[int] = []
    tasks = [asyncio.create_task(one(ready, opened)) for _ in range(count)]
    await asyncio.wait_for(ready.wait(), 60)
    await asyncio.sleep(0.5)  # the server subscribes each observer right after its filter
    print("ready", flush=True)
    await asyncio.wait_for(asyncio.gather(*tasks), 300)
    latencies.sort()
    print(json.dumps({"latencies": latencies}), flush=True)


# -- the driver ----------------------------------------------------------------------------


def _run_producer(home: Path, api_url: str, count: int, rate: float, tag: str) -> dict:
    env = _env(home, HEADWATER_API_URL=api_url)
    process = subprocess.run(
        [sys.executable, __file__, "--role", "producer", "--events", str(count),
         "--rate", str(rate), "--tag", tag],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if process.returncode != 0:
        raise SystemExit(f"producer failed:\n{process.stderr}")
    return json.loads(process.stdout.strip().splitlines()[-1])


def throughput(server_home: Path, api_url: str, count: int) -> None:
    tag = f"throughput-{time.time_ns()}"
    with tempfile.TemporaryDirectory() as client_home:
        report = _run_producer(Path(client_home), api_url, count, 0, tag)
        process_done = time.perf_counter()
        while _stored(server_home, f"{RESOURCE}.{tag}") < count:
            time.sleep(0.01)
        stored = time.perf_counter()
    emit_s, confirmed_s = report["emit_s"], report["confirmed_s"]
    print(f"throughput, {count} events from emit_event in one process:")
    print(f"  emit_event loop          {count / emit_s:>10,.0f} events/s")
    stats = report["stats"]
    print(f"  confirmed by the server  {count / confirmed_s:>10,.0f} events/s  ({stats})")
    persisted = confirmed_s + (stored - process_done)
    print(f"  in the server's database {count / persisted:>10,.0f} events/s  ({persisted:.2f} s)")


def offline_throughput(count: int) -> None:
    """The same producer with the server unreachable: every event goes to the outbox."""
    with tempfile.TemporaryDirectory() as client_home:
        api_url = f"http://127.0.0.1:{_free_port()}/api"
        report = _run_producer(Path(client_home), api_url, count, 0, "offline")
    print(f"server unreachable, {count} events: committed to the outbox")
    print(f"  {count / report['confirmed_s']:>10,.0f} events/s  ({report['stats']})")


def latency(api_url: str, observer_count: int, count: int, rate: float, per_process: int) -> None:
    tag = f"latency-{observer_count}-{time.time_ns()}"
    sizes = [per_process] * (observer_count // per_process)
    if observer_count % per_process:
        sizes.append(observer_count % per_process)
    with tempfile.TemporaryDirectory() as home:
        command = [sys.executable, __file__, "--role", "observers", "--api-url", api_url]
        command += ["--events", str(count), "--tag", tag, "--observers"]
        watchers = [
            subprocess.Popen(
                [*command, str(size)], env=_env(Path(home)), stdout=subprocess.PIPE, text=True
            )
            for size in sizes
        ]
        for watcher in watchers:
            assert watcher.stdout is not None
            assert watcher.stdout.readline().strip() == "ready"
        _run_producer(Path(home) / "producer", api_url, count, rate, tag)
        samples: list[float] = []
        for watcher in watchers:
            assert watcher.stdout is not None
            result = json.loads(watcher.stdout.readline())
            samples.extend(value * 1000 for value in result["latencies"])
            watcher.wait(60)
    cuts = statistics.quantiles(samples, n=100)
    print(
        f"latency emit_event -> observer, {observer_count:>3} observer(s) in {len(sizes)} "
        f"process(es), {count} events at {rate:g}/s: p50 {cuts[49]:.2f} ms  "
        f"p99 {cuts[98]:.2f} ms  max {max(samples):.2f} ms ({len(samples)} samples)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=["driver", "producer", "observers"], default="driver")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--latency-events", type=int, default=500)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--observers", type=int, nargs="*", default=[1, 100])
    parser.add_argument("--api-url")
    parser.add_argument("--tag", default="bench")
    parser.add_argument(
        "--observers-per-process",
        type=int,
        default=10,
        help="observers per measuring process (one process of 100 measures itself)",
    )
    args = parser.parse_args()
    if args.role == "producer":
        producer(args.events, args.rate, args.tag)
        return
    if args.role == "observers":
        asyncio.run(observers(args.api_url, args.observers[0], args.events, args.tag))
        return
    with tempfile.TemporaryDirectory() as server_home:
        port = _free_port()
        server = subprocess.Popen(
            [str(HEADWATER), "server", "start", "--port", str(port), "--no-access-log",
             "--log-level", "warning"],
            env=_env(Path(server_home)),
        )  # fmt: skip
        api_url = f"http://127.0.0.1:{port}/api"
        try:
            import httpx

            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{api_url}/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not start")
                time.sleep(0.05)
            throughput(Path(server_home), api_url, args.events)
            offline_throughput(args.events)
            for count in args.observers:
                latency(api_url, count, args.latency_events, args.rate, args.observers_per_process)
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
