"""Per-task overhead of the run engine, against the same work in raw Python/asyncio.

Run: ``python benchmarks/engine.py [--n 10000] [--repeat 3]``.

Workloads, N no-op tasks each:
  (a) sequential sync task calls in a sync flow        vs. plain function calls
  (b) asyncio.gather of async task calls in an async flow  vs. asyncio.gather of coroutines
  (c) .submit() of sync tasks, then wait                vs. ThreadPoolExecutor.submit
  (d) .map() of a sync task, then wait                  vs. ThreadPoolExecutor.map
  (m) peak RSS of a .map() of 1,000 tasks returning 1 MB each, consumed with as_completed
      and dropped (measured in a fresh subprocess)

Each workload runs in its own subprocess (fresh interpreter, nothing shared) with the
best of ``--repeat`` timings reported. ``--events off`` sets HEADWATER_EVENTS_ENABLED=false
(no persistence, no observers); the default is the configuration users get. Workload (b)
also runs with the other setting, so that what persistence costs is visible side by side.
Budgets (per task): (a) <= 30 us, (b) <= 25 us without events and <= 45 us with
persistence, (c)/(d) <= 60 us, (m) < 150 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

BUDGETS_US = {"a": 30.0, "b": 25.0, "c": 60.0, "d": 60.0}
PERSISTENCE_BUDGET_US = {"b": 45.0}  # with events on (run history written to SQLite)
RSS_BUDGET_MB = 150.0


def _workload(name: str, n: int, repeat: int) -> dict[str, float]:
    """Runs inside the subprocess; returns seconds for headwater and raw."""
    import asyncio
    import concurrent.futures
    import time

    from headwater import flow, task
    from headwater.futures import as_completed

    @task
    def noop(i: int) -> int:
        return i

    @task
    async def anoop(i: int) -> int:
        return i

    def plain(i: int) -> int:
        return i

    async def aplain(i: int) -> int:
        return i

    @flow
    def flow_a() -> None:
        for i in range(n):
            noop(i)

    @flow
    async def flow_b() -> None:
        await asyncio.gather(*[anoop(i) for i in range(n)])

    @flow
    def flow_c() -> None:
        futures = [noop.submit(i) for i in range(n)]
        for future in futures:
            future.wait()

    @flow
    def flow_d() -> None:
        noop.map(range(n)).wait()

    def raw_a() -> None:
        for i in range(n):
            plain(i)

    async def raw_b() -> None:
        await asyncio.gather(*[aplain(i) for i in range(n)])

    def raw_c() -> None:
        with concurrent.futures.ThreadPoolExecutor(min(32, (os.cpu_count() or 1) + 4)) as pool:
            futures = [pool.submit(plain, i) for i in range(n)]
            for future in futures:
                future.result()

    def raw_d() -> None:
        with concurrent.futures.ThreadPoolExecutor(min(32, (os.cpu_count() or 1) + 4)) as pool:
            list(pool.map(plain, range(n)))

    def timed(fn: object, is_async: bool) -> float:
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            if is_async:
                asyncio.run(fn())  # type: ignore[operator]
            else:
                fn()  # type: ignore[operator]
            best = min(best, time.perf_counter() - start)
        return best

    if name == "m":
        import resource

        @task
        def megabyte(i: int) -> bytes:
            return bytes(1_000_000)

        @flow
        def flow_m() -> int:
            total = 0
            for future in as_completed(megabyte.map(range(1000))):
                total += len(future.result())
            return total

        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        assert flow_m() == 1_000_000_000
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return {"peak_mb": peak, "baseline_mb": before}

    flows = {"a": (flow_a, raw_a, False), "b": (flow_b, raw_b, True)}
    flows.update({"c": (flow_c, raw_c, False), "d": (flow_d, raw_d, False)})
    headwater_fn, raw_fn, is_async = flows[name]
    timed(headwater_fn, is_async)  # warm-up: imports, first-run start-up, thread pools
    return {"headwater": timed(headwater_fn, is_async), "raw": timed(raw_fn, is_async)}


def _run_subprocess(name: str, n: int, repeat: int, events: str) -> dict[str, float]:
    env = dict(os.environ)
    env["HEADWATER_LOGGING_TO_CONSOLE"] = "false"
    if events == "off":
        env["HEADWATER_EVENTS_ENABLED"] = "false"
    # a fresh home per workload, removed afterwards: run histories grow by hundreds of MB
    with tempfile.TemporaryDirectory(prefix="headwater-bench-") as home:
        env.setdefault("HEADWATER_HOME", home)
        output = subprocess.run(
            [sys.executable, __file__, "--child", name, "--n", str(n), "--repeat", str(repeat)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    return json.loads(output.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--events", choices=["on", "off"], default="on")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_workload(args.child, args.n, args.repeat)))
        return

    print(f"headwater engine benchmark: N={args.n}, best of {args.repeat}, events {args.events}")
    print(f"{'workload':<52}{'headwater':>12}{'raw':>10}{'ratio':>8}{'budget':>10}  ok")
    labels = {
        "a": "(a) sequential sync task calls",
        "b": "(b) asyncio.gather of async task calls",
        "c": "(c) .submit() sync tasks",
        "d": "(d) .map() sync task",
    }
    other = "off" if args.events == "on" else "on"
    runs: list[tuple[str, str, str]] = []
    for name, label in labels.items():
        runs.append((name, label, args.events))
        if name in PERSISTENCE_BUDGET_US:
            runs.append((name, label, other))
    per_task: dict[tuple[str, str], float] = {}
    for name, label, events in runs:
        result = _run_subprocess(name, args.n, args.repeat, events)
        ours = per_task[name, events] = result["headwater"] / args.n * 1e6
        raw = result["raw"] / args.n * 1e6
        budget = (
            PERSISTENCE_BUDGET_US[name]
            if events == "on" and name in PERSISTENCE_BUDGET_US
            else BUDGETS_US[name]
        )
        if name in PERSISTENCE_BUDGET_US:
            label = f"{label}, events {events}"
        verdict = "yes" if ours <= budget else "NO"
        print(
            f"{label:<52}{ours:>9.1f} us{raw:>7.2f} us{ours / raw:>7.1f}x"
            f"{budget:>7.0f} us  {verdict}"
        )
    for name in PERSISTENCE_BUDGET_US:
        on, off = per_task[name, "on"], per_task[name, "off"]
        print(f"    ({name}) with events on costs {on / off:.1f}x ({on - off:+.1f} us per task)")
    memory = _run_subprocess("m", 1000, 1, args.events)
    verdict = "yes" if memory["peak_mb"] < RSS_BUDGET_MB else "NO"
    print(
        f"{'(m) peak RSS, map of 1,000 x 1 MB results':<52}{memory['peak_mb']:>9.1f} MB"
        f"{'':>10}{'':>8}{RSS_BUDGET_MB:>7.0f} MB  {verdict}"
        f"   (interpreter + headwater before the flow: {memory['baseline_mb']:.1f} MB)"
    )


if __name__ == "__main__":
    main()
