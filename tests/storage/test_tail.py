"""tail_events: the stored backlog, then rows as other writers commit them, each once."""

from __future__ import annotations

import datetime
from contextlib import aclosing
from pathlib import Path

import anyio
import pytest

from headwater.events import Event, emit_event, get_bus
from headwater.events.filters import EventFilter, EventNameFilter
from headwater.settings import temporary_settings
from headwater.storage import ensure_persistence, open_database, stop_persistence
from headwater.storage.tail import tail_events

pytestmark = pytest.mark.anyio


def emit(name: str, occurred: datetime.datetime | None = None) -> Event:
    event = emit_event(name, resource={"headwater.resource.id": f"tail.{name}"}, occurred=occurred)
    assert event is not None
    return event


async def test_backlog_then_new_events_in_commit_order(tmp_path: Path) -> None:
    now = datetime.datetime.now(datetime.timezone.utc)
    with temporary_settings(home=tmp_path, database_url=None):
        await anyio.to_thread.run_sync(ensure_persistence)
        try:
            emit("tail.old", now - datetime.timedelta(hours=2))
            recent = emit("tail.recent", now - datetime.timedelta(seconds=30))
            emit("tail.other")
            await anyio.to_thread.run_sync(get_bus().flush)
            wanted = EventFilter(
                event=EventNameFilter(prefix=["tail.old", "tail.recent", "tail.new", "tail.late"])
            )
            seen: list[str] = []
            database = await open_database()
            try:
                since = now - datetime.timedelta(minutes=1)
                tail = tail_events(database, wanted, since=since, poll_interval=0.01)
                async with aclosing(tail) as events:
                    with anyio.fail_after(20):
                        seen.append(str((await events.__anext__()).id))
                        late = emit("tail.late", now - datetime.timedelta(days=1))  # old clock
                        new = emit("tail.new")
                        seen.append(str((await events.__anext__()).id))
                        seen.append(str((await events.__anext__()).id))
            finally:
                await database.close()
        finally:
            await anyio.to_thread.run_sync(stop_persistence)
    # An event with an earlier ``occurred`` committed later is still seen: rowid order.
    assert seen == [str(recent.id), str(late.id), str(new.id)]
