"""Blocks: typed, named configuration saved in the database, with encrypted secrets.

The Prefect import paths are the public modules: :mod:`headwater.blocks.core` (``Block``),
:mod:`headwater.blocks.system` (``Secret``) and :mod:`headwater.blocks.notifications`
(Slack, Microsoft Teams, custom webhook, any apprise URL). Importing this package does not
import apprise.
"""

from headwater.blocks._core import Block, aread_block_documents, read_block_documents
from headwater.blocks._store import BlockDocument
from headwater.blocks._system import Secret
from headwater.blocks.fields import SecretDict, SecretStr

__all__ = [
    "Block",
    "BlockDocument",
    "Secret",
    "SecretDict",
    "SecretStr",
    "read_block_documents",
    "aread_block_documents",
]
