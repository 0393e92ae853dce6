"""Blocks: typed, named configuration saved in the database, with encrypted secrets.

The Prefect import paths are the public modules: :mod:`headwater.blocks.core` (``Block``),
:mod:`headwater.blocks.system` (``Secret``) and :mod:`headwater.blocks.notifications`
(the face of :mod:`headwater.notifications`: Slack, Microsoft Teams, custom webhook, any
apprise URL). Importing this package does not import apprise.
"""

from headwater.blocks.block import Block, BlockDocument, aread_block_documents, read_block_documents
from headwater.blocks.fields import SecretDict, SecretStr
from headwater.blocks.secret import Secret

__all__ = [
    "Block",
    "BlockDocument",
    "Secret",
    "SecretDict",
    "SecretStr",
    "read_block_documents",
    "aread_block_documents",
]
