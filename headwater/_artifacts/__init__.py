"""Artifacts: the implementation behind :mod:`headwater.artifacts` (``prefect.artifacts``)."""
