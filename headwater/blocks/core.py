"""Blocks: typed, named configuration saved in the database (``prefect.blocks.core``).

The implementation is :mod:`headwater.blocks.block`.
"""

from headwater.blocks.block import (
    Block,
    BlockDocument,
)

__all__ = [
    "Block",
    "BlockDocument",
]
