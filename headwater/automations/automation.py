"""``Automation``: a definition plus the methods that store it (``prefect.automations``).

Build one in Python and call :meth:`Automation.create`, or load one with
:meth:`Automation.read`. Sync methods may be called from any thread but the service loop's;
in async code use the ``a``-prefixed twins.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from headwater.automations import store
from headwater.automations.model import AutomationDefinition
from headwater.events.service import get_service_loop

__all__ = ["Automation"]

T = TypeVar("T")


class Automation(AutomationDefinition, kw_only=True, forbid_unknown_fields=True):
    """An automation: when ``trigger`` fires, run ``actions`` (as ``prefect.automations``).

    Attributes: those of :class:`~headwater.automations.model.AutomationDefinition`.
    """

    @classmethod
    def from_definition(cls, definition: AutomationDefinition) -> Automation:
        """The same automation, with the methods that store it."""
        if isinstance(definition, cls):
            return definition
        fields = {name: getattr(definition, name) for name in definition.__struct_fields__}
        return cls(**fields)

    async def acreate(self) -> Automation:
        """Validate and store this automation; sets ``id``. Returns self.

        Raises:
            AutomationValidationError: the definition breaks the rules; nothing is stored.
            AutomationNameTaken: another automation has this name.
        """
        stored = await store.create_automation(self)
        self.id = stored.id
        return self

    def create(self) -> Automation:
        """Sync :meth:`acreate`."""
        return run_sync(self.acreate)

    async def aupdate(self) -> None:
        """Store this automation's current fields under its ``id``.

        Raises:
            AutomationNotFound: no automation has this id (or it has none).
        """
        await store.update_automation(self)

    def update(self) -> None:
        """Sync :meth:`aupdate`."""
        run_sync(self.aupdate)

    async def adelete(self) -> bool:
        """Delete it; False when it did not exist."""
        return self.id is not None and await store.delete_automation(self.id)

    def delete(self) -> bool:
        """Sync :meth:`adelete`."""
        return run_sync(self.adelete)

    async def aenable(self) -> bool:
        """Enable it (and store that); False when it does not exist."""
        return await self._aset_enabled(True)

    def enable(self) -> bool:
        """Sync :meth:`aenable`."""
        return run_sync(self.aenable)

    async def adisable(self) -> bool:
        """Disable it (and store that); False when it does not exist."""
        return await self._aset_enabled(False)

    def disable(self) -> bool:
        """Sync :meth:`adisable`."""
        return run_sync(self.adisable)

    async def _aset_enabled(self, enabled: bool) -> bool:
        if self.id is None or not await store.set_enabled(self.id, enabled):
            return False
        self.enabled = enabled
        return True

    @classmethod
    async def aread(cls, id: uuid.UUID | str | None = None, name: str | None = None) -> Automation:
        """Load a stored automation by ``id`` or ``name``.

        Raises:
            AutomationNotFound: none has that id or name (a ValueError, as in Prefect).
            ValueError: neither or both of ``id`` and ``name`` were given.
        """
        if (id is None) == (name is None):
            raise ValueError("Automation.read() takes exactly one of id= or name=")
        if id is not None:
            found = await store.read_automation(uuid.UUID(str(id)))
        else:
            assert name is not None
            found = await store.read_automation_by_name(name)
        return cls.from_definition(found)

    @classmethod
    def read(cls, id: uuid.UUID | str | None = None, name: str | None = None) -> Automation:
        """Sync :meth:`aread`."""
        return run_sync(lambda: cls.aread(id=id, name=name))


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    # No loop in this thread: run one here. Inside a running loop (sync call from async
    # code), hand the work to headwater's service loop rather than nest loops.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_call(make))
    return get_service_loop().run_coroutine(_call(make))


async def _call(make: Callable[[], Awaitable[T]]) -> T:
    return await make()
