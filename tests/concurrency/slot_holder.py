"""A process that takes slots, for the multi-process tests (run as ``python slot_holder.py``).

share NAME ROUNDS OUT START: from Unix time START, take the limit ROUNDS times, appending
    "acquired released" wall-clock times to OUT while holding it.
hold NAME READY LEASE [HOSTNAME]: take the limit on a LEASE-second lease, write READY, and
    hold it until killed; HOSTNAME pretends the process runs on another machine.
"""

from __future__ import annotations

import sys
import time


def main(argv: list[str]) -> None:
    from headwater.concurrency import acquire
    from headwater.concurrency.sync import concurrency

    mode, name = argv[0], argv[1]
    if mode == "share":
        rounds, out, start = int(argv[2]), argv[3], float(argv[4])
        time.sleep(max(0.0, start - time.time()))
        for _ in range(rounds):
            with concurrency(name, timeout_seconds=30):
                acquired = time.time()
                time.sleep(0.03)
                released = time.time()
                with open(out, "a") as file:
                    file.write(f"{acquired!r} {released!r}\n")
        return
    ready, lease = argv[2], float(argv[3])
    if len(argv) > 4:
        acquire._HOSTNAME = argv[4]
    with concurrency(name, lease_duration=lease):
        with open(ready, "w") as file:
            file.write("holding\n")
        time.sleep(600)


if __name__ == "__main__":
    main(sys.argv[1:])
