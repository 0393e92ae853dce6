"""Helpers for block tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path


def iter_bytes(directory: Path) -> Iterator[bytes]:
    """The contents of every file in ``directory`` (the database, its WAL, the key...)."""
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            yield path.read_bytes()
