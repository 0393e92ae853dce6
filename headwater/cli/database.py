"""The commands' access to the run history: open the database, run one query, close.

Each command opens the database the settings name (``HEADWATER_DATABASE_URL`` or
``<HEADWATER_HOME>/headwater.db``) on its own short-lived event loop. The storage layer is
imported here, inside the functions, so ``headwater --help`` does not load it.

Run ids may be given in full or as a unique prefix (``3f2a9c``), optionally in resource form
(``headwater.flow-run.<uuid>``), as they appear in events.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from headwater.cli.errors import CliUsageError

if TYPE_CHECKING:
    from headwater.storage import Database
    from headwater.storage.lookup import RunKind

__all__ = ["resolve_run_id", "with_database"]

T = TypeVar("T")

_ID_PREFIX = re.compile(r"[0-9a-fA-F-]+")
_KIND_WORDS = {"flow-run": "flow run", "task-run": "task run"}


def with_database(work: Callable[[Database], Awaitable[T]]) -> T:
    """Open the database, await ``work(database)``, close it, and return what ``work`` returned.

    Raises:
        StorageError: the database cannot be opened or read; the command turns it into
            a one-line error naming the file and the cause (exit code 1).
    """
    import anyio

    from headwater.storage import open_database

    async def main() -> T:
        database = await open_database()
        try:
            return await work(database)
        finally:
            await database.close()

    return anyio.run(main)


async def resolve_run_id(database: Database, kind: RunKind, text: str) -> uuid.UUID:
    """The id of the one stored run of ``kind`` that ``text`` names, in full or by prefix.

    Raises:
        CliUsageError: no run has that id, or the prefix matches more than one run.
    """
    from headwater.storage.lookup import find_run_ids

    word = _KIND_WORDS[kind]
    value = text.strip().removeprefix(f"headwater.{kind}.")
    if not _ID_PREFIX.fullmatch(value):
        raise CliUsageError(f"no {word} with id '{text}'")
    try:
        value = str(uuid.UUID(value))  # a full id in any spelling (braces, no hyphens, caps)
    except ValueError:
        pass
    matches = await find_run_ids(database, kind, value, limit=3)
    if not matches:
        raise CliUsageError(f"no {word} with id '{text}'")
    if len(matches) > 1:
        shown = ", ".join(str(match) for match in matches[:2])
        raise CliUsageError(
            f"id prefix '{text}' matches several {word}s ({shown}, ...); give more characters"
        )
    return matches[0]
