"""Cost of concurrency slots, and of tag-limit checking on the per-task path.

Run: ``python benchmarks/concurrency.py [--n 2000] [--repeat 5] [--events on|off]``.

Figures, in microseconds (best of ``--repeat``), in a fresh HEADWATER_HOME:
  (1) sync ``concurrency()`` enter + exit on an existing limit, no contention
      (one BEGIN IMMEDIATE transaction to take the slots, one to give them back)
  (2) the same with ``async with`` (each transaction in a worker thread)
  (3) ``rate_limit()`` on a limit that never fills
  (4) tag-limit check per task run when no tag limits exist: untagged, and tagged
      (``acquire_task_slots`` + enter/exit, sync and async) - the per-task path's share
  (5) a sequential sync task tagged with a (roomy) tag limit, minus the same task untagged:
      what taking and giving back a tag slot adds to a task run
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import shutil
import tempfile
import time
from collections.abc import Callable


def best(fn: Callable[[], None], n: int, repeat: int) -> float:
    """Microseconds per call: the best of ``repeat`` runs of ``n`` calls."""
    fastest = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        fastest = min(fastest, time.perf_counter() - start)
    return fastest / n * 1e6


def best_async(fn: Callable[[], object], n: int, repeat: int) -> float:
    async def run() -> float:
        fastest = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(n):
                await fn()  # type: ignore[misc]
            fastest = min(fastest, time.perf_counter() - start)
        return fastest / n * 1e6

    return asyncio.run(run())


def _scratch_home() -> str:
    """A temporary HEADWATER_HOME, removed when the benchmark exits."""
    home = tempfile.mkdtemp(prefix="headwater-bench-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--events", choices=["on", "off"], default="on")
    args = parser.parse_args()
    os.environ["HEADWATER_HOME"] = _scratch_home()
    os.environ["HEADWATER_LOGGING_TO_CONSOLE"] = "false"
    if args.events == "off":
        os.environ["HEADWATER_EVENTS_ENABLED"] = "false"

    from headwater import flow, task
    from headwater.concurrency import create_concurrency_limit
    from headwater.concurrency.asyncio import concurrency as aconcurrency
    from headwater.concurrency.sync import concurrency, rate_limit
    from headwater.concurrency.task_slots import acquire_task_slots
    from headwater.engine.runs import TaskRun

    n, repeat = args.n, args.repeat
    print(f"headwater concurrency benchmark: N={n}, best of {repeat}, events {args.events}")

    # (4) first, while no limit exists at all
    untagged = TaskRun("k", "t", "t-0", (), None)
    tagged = TaskRun("k", "t", "t-0", ("etl", "daily"), None)

    def check(run: TaskRun) -> Callable[[], None]:
        def once() -> None:
            with acquire_task_slots(run):
                pass

        return once

    def acheck(run: TaskRun) -> Callable[[], object]:
        async def once() -> None:
            async with acquire_task_slots(run):
                pass

        return once

    check(tagged)()  # the first call reads the (empty) list of limited tags
    tag_rows = [
        ("(4) tag check, untagged task run (sync)", best(check(untagged), n * 50, repeat)),
        ("(4) tag check, tagged, no limits (sync)", best(check(tagged), n * 50, repeat)),
        ("(4) tag check, untagged task run (async)", best_async(acheck(untagged), n * 50, repeat)),
        ("(4) tag check, tagged, no limits (async)", best_async(acheck(tagged), n * 50, repeat)),
    ]

    create_concurrency_limit("bench", 1_000_000)
    create_concurrency_limit("paced", 1_000_000, slot_decay_per_second=1_000_000)

    def hold() -> None:
        with concurrency("bench"):
            pass

    async def ahold() -> None:
        async with aconcurrency("bench"):
            pass

    def pace() -> None:
        rate_limit("paced")

    hold()
    rows = [
        ("(1) concurrency() enter+exit (sync)", best(hold, n, repeat)),
        ("(2) concurrency() enter+exit (async)", best_async(ahold, n // 4, repeat)),
        ("(3) rate_limit() (sync)", best(pace, n, repeat)),
        *tag_rows,
    ]

    create_concurrency_limit("tag:roomy", 1_000_000)

    @task
    def plain(i: int) -> int:
        return i

    @task(tags=["roomy"])
    def limited(i: int) -> int:
        return i

    @flow
    def sequential(which: str, count: int) -> None:
        body = limited if which == "limited" else plain
        for i in range(count):
            body(i)

    def flow_cost(which: str) -> float:
        fastest = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            sequential(which, n)
            fastest = min(fastest, time.perf_counter() - start)
        return fastest / n * 1e6

    sequential("plain", 10)
    sequential("limited", 10)
    extra = flow_cost("limited") - flow_cost("plain")
    rows.append(("(5) tag slot per task run (limited - plain)", extra))

    for label, micros in rows:
        print(f"{label:<52}{micros:>10.2f} us")


if __name__ == "__main__":
    main()
