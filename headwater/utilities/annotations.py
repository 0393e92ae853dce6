"""Argument annotations (Prefect's ``prefect.utilities.annotations``)."""

from headwater.engine.annotations import (
    BaseAnnotation,
    allow_failure,
    freeze,
    opaque,
    quote,
    unmapped,
)

__all__ = ["BaseAnnotation", "allow_failure", "freeze", "opaque", "quote", "unmapped"]
