"""Result serializers (``prefect.serializers`` in Prefect)."""

from headwater.engine.serializers import (
    CompressedJSONSerializer,
    CompressedPickleSerializer,
    CompressedSerializer,
    JSONSerializer,
    PickleSerializer,
    Serializer,
)

__all__ = [
    "CompressedJSONSerializer",
    "CompressedPickleSerializer",
    "CompressedSerializer",
    "JSONSerializer",
    "PickleSerializer",
    "Serializer",
]
