"""Variables: named JSON values shared by flows and automations (``prefect.variables``)."""

from headwater._variables import Variable

__all__ = ["Variable"]
