"""Who owns a reactor's checkpointed trigger state: ``<host>|<pid>|<token>``.

A starting reactor adopts the rows of owners that are gone (released on a clean stop, or a
dead process on this host); owners on other hosts are never assumed gone.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable

from headwater.storage.crashes import process_alive

__all__ = ["abandoned_owners", "new_owner", "retire"]

_HOST = socket.gethostname()
_live_tokens: set[str] = set()


def new_owner() -> str:
    """A fresh owner id for a reactor of this process; call :func:`retire` when it stops."""
    token = uuid.uuid4().hex[:12]
    _live_tokens.add(token)
    return f"{_HOST}|{os.getpid()}|{token}"


def retire(owner: str) -> None:
    """Mark a reactor of this process as stopped, so its rows may be adopted."""
    _live_tokens.discard(owner.rsplit("|", 1)[-1])


def abandoned_owners(owners: Iterable[str]) -> list[str]:
    """The owners whose reactor is certainly gone: a dead process on this host, or a
    stopped reactor of this process. Owners on other hosts are never assumed gone."""
    gone = []
    for owner in owners:
        host, _, rest = owner.partition("|")
        pid_text, _, token = rest.partition("|")
        if not owner or host != _HOST or not pid_text.isdigit():
            continue
        pid = int(pid_text)
        if pid == os.getpid():
            if token not in _live_tokens:
                gone.append(owner)
        elif not process_alive(pid):
            gone.append(owner)
    return gone
