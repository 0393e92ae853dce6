"""Blocks: typed, named configuration saved in the database (``prefect.blocks.core``)."""

from headwater.blocks._core import Block
from headwater.blocks._store import BlockDocument

__all__ = ["Block", "BlockDocument"]
