"""What caching costs per task: a cache hit and a persisted miss, against a plain task.

Run: ``python benchmarks/caching.py [--n 2000] [--repeat 5] [--events off]``.

Workloads, N sync task calls in a sync flow (local result storage in a temporary
``HEADWATER_HOME``):
  plain        ``@task`` with no caching options (the path every task takes by default)
  miss+write   ``@task(cache_policy=INPUTS)`` on new inputs: key, lookup, write the record
  hit          the same calls again: key, read and decode the record, a Cached state
  hit (async)  the hits as awaited async task calls in an async flow

Each figure is the best of ``--repeat`` runs; the miss workload starts from an empty storage
directory every time.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import shutil
import tempfile
import time


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
    os.environ.setdefault("HEADWATER_HOME", _scratch_home())
    os.environ["HEADWATER_LOGGING_TO_CONSOLE"] = "false"
    if args.events == "off":
        os.environ["HEADWATER_EVENTS_ENABLED"] = "false"

    from headwater import flow, task
    from headwater.cache_policies import INPUTS
    from headwater.settings import get_settings

    n = args.n
    storage = get_settings().home / "storage"

    @task
    def plain(i: int) -> int:
        return i

    @task(cache_policy=INPUTS)
    def cached(i: int) -> int:
        return i

    @task(cache_policy=INPUTS)
    async def acached(i: int) -> int:
        return i

    @flow
    def run_plain() -> None:
        for i in range(n):
            plain(i)

    @flow
    def run_cached() -> None:
        for i in range(n):
            cached(i)

    @flow
    async def run_acached() -> None:
        for i in range(n):
            await acached(i)

    def best(fn: object, setup: object = None, is_async: bool = False) -> float:
        result = float("inf")
        for _ in range(args.repeat):
            if setup is not None:
                setup()  # type: ignore[operator]
            start = time.perf_counter()
            if is_async:
                asyncio.run(fn())  # type: ignore[operator]
            else:
                fn()  # type: ignore[operator]
            result = min(result, time.perf_counter() - start)
        return result / n * 1e6

    def empty_storage() -> None:
        shutil.rmtree(storage, ignore_errors=True)

    run_plain()  # warm-up: imports, start-up
    figures = {"plain": best(run_plain), "miss+write": best(run_cached, empty_storage)}
    run_cached()
    run_acached()
    figures["hit"] = best(run_cached)
    figures["hit (async)"] = best(run_acached, is_async=True)

    print(f"headwater caching benchmark: N={n}, best of {args.repeat}, events {args.events}")
    print(f"{'workload':<16}{'per task':>12}{'vs plain':>12}")
    for name, micros in figures.items():
        extra = micros - figures["plain"]
        print(f"{name:<16}{micros:>9.1f} us{extra:>+9.1f} us")


if __name__ == "__main__":
    main()
