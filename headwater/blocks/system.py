"""The ``Secret`` block (``prefect.blocks.system``)."""

from headwater.blocks._system import Secret

__all__ = ["Secret"]
