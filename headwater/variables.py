"""Variables: named JSON values shared by flows and automations (``prefect.variables``).

The implementation is :mod:`headwater.blocks.variable` (stored beside blocks).
"""

from headwater.blocks.variable import (
    Variable,
)

__all__ = [
    "Variable",
]
