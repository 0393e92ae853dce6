"""Seeing another process's commits to the database, without polling a query.

SQLite's ``PRAGMA data_version`` on a connection changes whenever *another* connection
commits; reading it is a look at the WAL's shared memory, not a query of any table. A
launcher (to start requested runs) and ``run_deployment`` (to see a run's final state) use
it as their wake-up signal: no event crosses processes, so checking it every few
milliseconds is the push they get.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio

__all__ = ["DataVersionWatch"]


class DataVersionWatch:
    """A connection of its own that tells when the database changed since the last look."""

    def __init__(self, path: Path) -> None:
        self._connection = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._last = self._version()

    def _version(self) -> int:
        return int(self._connection.execute("PRAGMA data_version").fetchone()[0])

    def changed(self) -> bool:
        """True once for each look after which another connection committed."""
        version = self._version()
        if version == self._last:
            return False
        self._last = version
        return True

    async def next_change(self, interval: float) -> None:
        """Return once another connection has committed, looking every ``interval`` s."""
        # no event exists for another process's commit: data_version is the signal
        while not self.changed():  # noqa: ASYNC110
            await anyio.sleep(interval)

    def close(self) -> None:
        self._connection.close()
