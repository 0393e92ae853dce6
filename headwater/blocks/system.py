"""The ``Secret`` block (``prefect.blocks.system``).

The implementation is :mod:`headwater.blocks.secret`.
"""

from headwater.blocks.secret import (
    Secret,
)

__all__ = [
    "Secret",
]
